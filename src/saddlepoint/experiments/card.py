"""The robustness card: what a leaderboard entry says about one model, as a library type.

``benchmark(model, x, y, norm=..., eps=...)`` measures clean accuracy and runs the gradient-
masking audit (which runs the strongest evaluation beside PGD, FGSM and Square); the card holds
the per-image worst case of every attack as the robust accuracy, the per-attack breakdown, the
audit's verdict, and what it ran on. A smoothed model (one trained under Gaussian noise, or any
model given a ``smoothing`` sigma) also gets its randomized-smoothing certificate: certified L2
accuracy per radius, with the procedure's settings. ``save`` writes ``card.json`` and an HTML
report, ``load`` reads a card back, ``compare`` lays cards side by side. ``saddlepoint
benchmark`` parses its arguments and calls these.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saddlepoint.evaluate.audit import audit
from saddlepoint.evaluate.robustness import STRONGEST_LABEL
from saddlepoint.fileio import write_text
from saddlepoint.modes import predict_logits
from saddlepoint.runlog import RunLog, Section, Table
from saddlepoint.version import __version__

CARD_FORMAT = "saddlepoint-robustness-card"
CARD_FILE = "card.json"


@dataclass
class RobustnessCard:
    """One model's card; ``to_dict`` is the ``card.json`` record (format version 1)."""

    model: dict[str, Any]
    data: dict[str, Any]
    threat_model: dict[str, Any]
    clean_accuracy: float
    robust_accuracy: float
    robust_attack: str
    per_attack: dict[str, float]
    audit: dict[str, Any]
    evaluation: dict[str, Any]
    software: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    machine: str = ""
    seconds: float = 0.0
    date: str = ""
    # where the attacks ran: {"executor": "local"}, or Ray's workers, devices and seconds each
    ran: dict[str, Any] = field(default_factory=lambda: {"executor": "local"})
    # each attack's forward and backward image-passes per image, counted on the model
    passes: dict[str, list[float]] = field(default_factory=dict)
    # randomized smoothing's certificate of the smoothed model (None: not a smoothed model)
    certificate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, "format_version": 1, **asdict(self)}

    @classmethod
    def from_dict(cls, record: Any, source: str = "the record") -> RobustnessCard:
        if not isinstance(record, dict) or record.get("format") != CARD_FORMAT:
            raise ValueError(
                f"{source} is not a robustness card written by `saddlepoint benchmark`."
            )
        fields = {k: v for k, v in record.items() if k not in ("format", "format_version")}
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(
                f"{source} is not a robustness card of this version ({error})."
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RobustnessCard:
        """A card from ``path``: its JSON file, or the folder holding ``card.json``."""
        file = Path(path) / CARD_FILE if Path(path).is_dir() else Path(path)
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{file} is not a readable robustness card ({error}).") from None
        return cls.from_dict(record, str(file))

    @property
    def name(self) -> str:
        """What the card is of: the model's file, else its registry name."""
        return Path(str(self.model.get("file") or self.model.get("reference") or "model")).name

    def save(self, folder: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write ``card.json`` and ``report.html`` into ``folder``; returns the report's path."""
        from saddlepoint.viz.report import render_report

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / CARD_FILE, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        with RunLog(out) as log:
            log.add(self.section())
        return Path(render_report(out, title=title or f"Robustness card: {self.name}"))

    def section(self) -> Section:
        """The card as a report section: its headline table and the audit's checks."""
        checks = [
            ["PASS" if c["passed"] else "FAIL", c["name"], c["meaning"]]
            for c in self.audit["checks"]
        ]
        verdict = (
            "no sign of gradient masking"
            if self.audit["passed"]
            else ("signs of gradient masking: " + "; ".join(self.audit["failed"]))
        )
        verdict += "".join(f"; note: {note}" for note in self.audit.get("notes", []))
        text = (
            f"{self.name} on {self.data['images']} {self.data['split']} images of "
            f"{self.data['source']}, {self.threat_model['norm']} eps "
            f"{self.threat_model['eps']:.4g}: clean accuracy {self.clean_accuracy:.4f}, robust "
            f"accuracy {self.robust_accuracy:.4f} (the per-image worst case of every attack "
            f"below; reached by {self.robust_attack}{_draws(self.evaluation)}). Audit: {verdict}."
        )
        tables = [
            Table(
                "card", ["", self.name], compare([self]), "headline numbers and per-attack accuracy"
            ),
            Table("checks", ["", "check", "what failing means"], checks, "the audit's checks"),
        ]
        if self.certificate is not None:
            text += " " + certificate_text(self.certificate)
            tables.append(certificate_table(self.certificate))
        return Section(
            key="card",
            title=f"Robustness card: {self.name}",
            text=text,
            tables=tables,
            params={"card": self.model.get("sha256", ""), "eps": self.threat_model["eps"]},
        )


def certificate_text(certificate: dict[str, Any]) -> str:
    """What the certificate says and how it was made, in a sentence or two."""
    c = certificate
    return (
        f"Randomized smoothing (Cohen et al., 2019) of this model with Gaussian noise of sigma "
        f"{c['sigma']:g} ({c['sigma_from']}): on the first {c['images']} images, "
        f"{c['curve'][0]['certified accuracy']:.1%} are predicted correctly with a certificate "
        f"and {c['abstained']:.1%} abstained (n {c['n']}, n0 {c['n0']}, alpha {c['alpha']:g}, "
        f"{c['seconds_per_image']:.2f} s per image). A certified radius is a lower bound that "
        "holds for the smoothed classifier, in L2, with probability 1 - alpha; the attacks "
        "above measure the model itself."
    )


def certificate_table(certificate: dict[str, Any]) -> Table:
    """Certified accuracy at each L2 radius."""
    rows = [[p["radius"], p["certified accuracy"]] for p in certificate["curve"]]
    caption = (
        f"certified accuracy of the smoothed model (sigma {certificate['sigma']:g}) at each L2 "
        f"radius, {certificate['images']} images"
    )
    return Table("certified", ["L2 radius", "certified accuracy"], rows, caption)


def compare(cards: list[RobustnessCard]) -> list[list[Any]]:
    """The cards' headline numbers as rows, one column per card."""
    attacks = list(dict.fromkeys(name for card in cards for name in card.per_attack))
    rows: list[list[Any]] = [
        ["data", *[f"{c.data['source']} {c.data['split']}" for c in cards]],
        ["images", *[c.data["images"] for c in cards]],
        ["threat model", *[f"{c.threat_model['norm']} {c.threat_model['eps']:.4g}" for c in cards]],
        ["clean accuracy", *[c.clean_accuracy for c in cards]],
        ["robust accuracy", *[c.robust_accuracy for c in cards]],
        ["reached by", *[c.robust_attack for c in cards]],
    ]
    for name in attacks:
        rows.append([f"  {name}", *[c.per_attack.get(name, "-") for c in cards]])
    audits = [
        "passed" if c.audit["passed"] else "FAILED: " + "; ".join(c.audit["failed"]) for c in cards
    ]
    rows.append(["audit", *audits])
    rows.append(["cost, strongest evaluation", *[_cost(c, STRONGEST_LABEL) for c in cards]])
    rows.append(["cost, all its attacks", *[_cost(c) for c in cards]])
    if any(c.certificate for c in cards):
        rows.append(["certified (smoothed)", *[_certified(c.certificate) for c in cards]])
    rows.append(["seconds", *[f"{c.seconds:.1f}" for c in cards]])
    rows.append(["ran on", *[_ran(c.ran) for c in cards]])
    software = [
        f"saddlepoint {c.software['saddlepoint']}, torch {c.software['torch']}" for c in cards
    ]
    rows.append(["software", *software])
    return rows


def _draws(evaluation: dict[str, Any]) -> str:
    """How a randomized model was scored, where it was (older cards say nothing)."""
    draws = int(evaluation.get("rescoring_draws", 1))
    if draws <= 1:
        return ""
    return (
        f"; a randomized model: each point re-scored over {draws} draws, robust only if "
        "correct in all"
    )


def _cost(card: RobustnessCard, attack: str | None = None) -> str:
    """Forward and backward passes per image of one attack, or of every attack of the card."""
    chosen = [v for k, v in card.passes.items() if attack is None or k == attack]
    if not chosen:
        return "-"
    forward, backward = sum(v[0] for v in chosen), sum(v[1] for v in chosen)
    return f"{forward:,.0f} forward + {backward:,.0f} backward passes per image"


def _certified(certificate: dict[str, Any] | None) -> str:
    """The certificate in one cell: sigma and certified accuracy at radius 0 and the largest."""
    if not certificate:
        return "-"
    first, last = certificate["curve"][0], certificate["curve"][-1]
    return (
        f"sigma {certificate['sigma']:g}: {first['certified accuracy']:.1%} at L2 "
        f"{first['radius']:g}, {last['certified accuracy']:.1%} at {last['radius']:g}"
    )


def smoothing_sigma(metadata: dict[str, Any]) -> float | None:
    """The Gaussian noise a checkpoint was trained under (``train --defense noise``, every
    image of each batch), the sigma its smoothed version is certified at; None otherwise."""
    defense = metadata.get("defense") or {}
    if (
        defense.get("name") == "noise"
        and defense.get("kind") == "gaussian"
        and float(defense.get("fraction", 1.0)) == 1.0
    ):
        return float(defense["scale"])
    return None


def certify_card(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    sigma: float,
    sigma_from: str = "given",
    n: int = 100_000,
    n0: int = 100,
    alpha: float = 0.001,
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    seed: int = 0,
    batch_size: int = 1000,
) -> dict[str, Any]:
    """The certificate record of ``model`` smoothed at ``sigma`` on ``images``: Cohen et al.'s
    CERTIFY per image and the certified-accuracy curve, with every setting it depends on."""
    from saddlepoint.evaluate.smoothing import SmoothedClassifier

    smoothed = SmoothedClassifier(model, sigma, batch_size=batch_size, seed=seed)
    result = smoothed.certify(images, n0=n0, n=n, alpha=alpha)
    return {
        "sigma": float(sigma),
        "sigma_from": sigma_from,
        "n": n,
        "n0": n0,
        "alpha": alpha,
        "seed": seed,
        "images": len(labels),
        "abstained": float((result.prediction < 0).float().mean()),
        "curve": result.curve(labels.cpu(), list(radii)),
        "seconds_per_image": result.seconds / max(len(labels), 1),
    }


def _ran(ran: dict[str, Any]) -> str:
    if ran.get("executor") != "ray":
        return "one process"
    return f"{ran['workers']} Ray workers ({', '.join(ran['devices'])}), {ran['shards']} shards"


def benchmark(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float,
    seed: int = 0,
    strong_steps: int = 100,
    strong_queries: int = 5000,
    model_record: dict[str, Any] | None = None,
    data_record: dict[str, Any] | None = None,
    device: str = "cpu",
    smoothing: dict[str, Any] | None = None,
) -> RobustnessCard:
    """The robustness card of ``model`` on ``(images, labels)`` in the ``norm`` ball of radius
    ``eps``: clean accuracy, then the audit (APGD with ``strong_steps`` steps, Square with
    ``strong_queries`` queries in the strongest evaluation). ``model_record`` and
    ``data_record`` say what the model and the images are (file, digest, dataset, split).
    ``smoothing`` (``sigma`` and optionally ``images``, the count certified, and the other
    keywords of ``certify_card``) adds the certificate of the model smoothed at sigma."""
    started = time.perf_counter()
    with torch.no_grad():
        clean = float(
            (predict_logits(model, images).argmax(1).cpu() == labels.cpu()).float().mean()
        )
    report = audit(
        model,
        images,
        labels,
        norm=norm,
        eps=eps,
        seed=seed,
        queries=min(1000, strong_queries),  # the audit's own black-box check
        strong_steps=strong_steps,
        strong_queries=strong_queries,
    )
    certificate = None
    if smoothing is not None:
        settings = dict(smoothing)
        count = int(settings.pop("images", len(labels)))
        certificate = certify_card(model, images[:count], labels[:count], seed=seed, **settings)
    return RobustnessCard(
        certificate=certificate,
        model=dict(model_record or {}),
        data={"source": "tensors", "split": "given", **(data_record or {}), "images": len(labels)},
        threat_model={"norm": norm, "eps": float(eps)},
        clean_accuracy=clean,
        robust_accuracy=report.robust_accuracy,
        robust_attack=report.robust_attack,
        per_attack=report.accuracies,
        passes={name: list(value) for name, value in report.passes.items()},
        audit={
            "passed": report.passed,
            "failed": [c.name for c in report.checks if not c.passed],
            "notes": report.notes,
            "checks": report.to_dict()["checks"],
        },
        evaluation={
            "apgd_steps": strong_steps,
            "square_queries": strong_queries,
            "seed": seed,
            "rescoring_draws": report.rescoring_draws,
        },
        software={
            "saddlepoint": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        device=str(device),
        machine=f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
        seconds=round(time.perf_counter() - started, 1),
        date=time.strftime("%Y-%m-%d"),
    )
