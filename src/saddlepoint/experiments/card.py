"""The robustness card: what a leaderboard entry says about one model, as a library type.

``benchmark(model, x, y, norm=..., eps=...)`` measures clean accuracy and runs the gradient-
masking audit (which runs the strongest evaluation beside PGD, FGSM and Square); the card holds
the per-image worst case of every attack as the robust accuracy, the per-attack breakdown, the
audit's verdict, and what it ran on. ``save`` writes ``card.json`` and an HTML report, ``load``
reads a card back, ``compare`` lays cards side by side. ``saddlepoint benchmark`` parses its
arguments and calls these.
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
            f"below; reached by {self.robust_attack}). Audit: {verdict}."
        )
        return Section(
            key="card",
            title=f"Robustness card: {self.name}",
            text=text,
            tables=[
                Table(
                    "card",
                    ["", self.name],
                    compare([self]),
                    "headline numbers and per-attack accuracy",
                ),
                Table("checks", ["", "check", "what failing means"], checks, "the audit's checks"),
            ],
            params={"card": self.model.get("sha256", ""), "eps": self.threat_model["eps"]},
        )


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
    rows.append(["seconds", *[f"{c.seconds:.1f}" for c in cards]])
    rows.append(["ran on", *[_ran(c.ran) for c in cards]])
    software = [
        f"saddlepoint {c.software['saddlepoint']}, torch {c.software['torch']}" for c in cards
    ]
    rows.append(["software", *software])
    return rows


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
) -> RobustnessCard:
    """The robustness card of ``model`` on ``(images, labels)`` in the ``norm`` ball of radius
    ``eps``: clean accuracy, then the audit (APGD with ``strong_steps`` steps, Square with
    ``strong_queries`` queries in the strongest evaluation). ``model_record`` and
    ``data_record`` say what the model and the images are (file, digest, dataset, split)."""
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
    return RobustnessCard(
        model=dict(model_record or {}),
        data={"source": "tensors", "split": "given", **(data_record or {}), "images": len(labels)},
        threat_model={"norm": norm, "eps": float(eps)},
        clean_accuracy=clean,
        robust_accuracy=report.robust_accuracy,
        robust_attack=report.robust_attack,
        per_attack=report.accuracies,
        audit={
            "passed": report.passed,
            "failed": [c.name for c in report.checks if not c.passed],
            "notes": report.notes,
            "checks": report.to_dict()["checks"],
        },
        evaluation={"apgd_steps": strong_steps, "square_queries": strong_queries, "seed": seed},
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
