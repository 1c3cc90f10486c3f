"""`saddlepoint benchmark`: a robustness card for any model, in the spirit of RobustBench's
leaderboard entries: clean accuracy, robust accuracy under the strongest evaluation we have with
the per-attack breakdown, the gradient-masking audit's verdict, and what it ran on."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, cast

from saddlepoint import __version__
from saddlepoint.cli.attack import _fraction, check_pixel_radius, state_cost
from saddlepoint.cli.common import (
    CLIError,
    add_data_arguments,
    add_device_argument,
    add_strong_evaluation_arguments,
    against_record,
    check_outputs,
    format_table,
    positive_int,
    warn_clean_accuracy,
)
from saddlepoint.cli.model_options import (
    add_model_arguments,
    load_model_data,
    model_inputs,
    model_path,
    own_model_given,
)
from saddlepoint.fileio import content_digest, write_text

CARD_FORMAT = "saddlepoint-robustness-card"
CARD_FILE = "card.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="a robustness card for a checkpoint or your own model (JSON record + HTML report)",
        description="Measure a model the way a leaderboard entry does: clean accuracy, then the "
        "gradient-masking audit, which runs the strongest evaluation the project has (AutoAttack "
        "'standard' with restarts and APGD-DLR) beside PGD, FGSM and Square; the robust accuracy "
        "quoted is the per-image worst case of every attack at eps. Writes OUT/card.json (model, "
        "data, threat model, clean and robust accuracy, per-attack breakdown, audit verdict, "
        "software versions, time) and OUT/report.html. `saddlepoint report A/card.json "
        "B/card.json` compares cards side by side.",
    )
    add_model_arguments(parser)
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf", help="(default: linf)")
    parser.add_argument(
        "--eps", type=_fraction, required=True, help="radius of the ball, e.g. 8/255 or 0.3"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=1000,
        help="test images (default: 1000, RobustBench's count for a quick entry)",
    )
    add_strong_evaluation_arguments(parser)
    parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' draws")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the card (default: MODEL-benchmark/)"
    )
    add_data_arguments(parser, user_data=True)
    parser.set_defaults(handler=run)


def _model_record(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"spec": meta.get("model")}
    for _, path in model_inputs(args)[:1]:
        record["file"] = str(path)
        record["sha256"] = content_digest(path)
    if args.model is not None:
        record["reference"] = args.model
    return record


def run(args: argparse.Namespace) -> int:
    check_pixel_radius(args.eps, args.norm)
    import torch

    from saddlepoint.evaluate import evaluate_split
    from saddlepoint.evaluate.audit import audit
    from saddlepoint.evaluate.robustness import strongest_attack
    from saddlepoint.runlog import RunLog

    own_model_given(args)
    out = args.out or model_path(args).with_name(model_path(args).stem + "-benchmark")
    if (out / "run.sqlite").is_file() and not (out / CARD_FILE).is_file():
        raise CLIError(
            f"--out {out} holds another run (a study's or the demo's run.sqlite, no {CARD_FILE}); "
            "a card goes into a folder of its own: pick a new one."
        )
    check_outputs([("--out", out / CARD_FILE), ("--out", out / "report.html")], model_inputs(args))
    started = time.perf_counter()
    model, meta, data = load_model_data(args, device=args.device)
    split = data.split(args.split).head(args.limit)
    clean = evaluate_split(model, split, data.num_classes)
    comparable = against_record(args, len(split))
    warn_clean_accuracy(float(cast(float, clean["accuracy"])), meta, comparable)
    state_cost(  # the audit's strongest evaluation dominates; its other attacks add about 30%
        strongest_attack(args.norm, args.eps, steps=args.strong_steps, queries=args.strong_queries),
        model,
        split.images,
        split.labels,
        "the card (clean accuracy, the audit and the strongest evaluation)",
        factor=1.3,
    )
    report = audit(
        model,
        split.images,
        split.labels,
        norm=args.norm,
        eps=args.eps,
        seed=args.seed,
        queries=min(1000, args.strong_queries),  # the audit's own black-box check
        strong_steps=args.strong_steps,
        strong_queries=args.strong_queries,
    )
    card = {
        "format": CARD_FORMAT,
        "format_version": 1,
        "model": _model_record(args, meta),
        "data": {
            "source": str(args.data) if args.data is not None else data.name,
            "split": args.split,
            "images": int(len(split.labels)),
        },
        "threat_model": {"norm": args.norm, "eps": float(args.eps)},
        "clean_accuracy": float(cast(float, clean["accuracy"])),
        "robust_accuracy": report.robust_accuracy,
        "robust_attack": report.robust_attack,
        "per_attack": report.accuracies,
        "audit": {
            "passed": report.passed,
            "failed": [c.name for c in report.checks if not c.passed],
            "notes": report.notes,
            "checks": report.to_dict()["checks"],
        },
        "evaluation": {
            "apgd_steps": args.strong_steps,
            "square_queries": args.strong_queries,
            "seed": args.seed,
        },
        "software": {
            "saddlepoint": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "device": str(args.device),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
        "seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / CARD_FILE, json.dumps(card, indent=2, default=str) + "\n")
    with RunLog(out) as log:
        log.add(card_section(card, str(model_path(args).name)))
    from saddlepoint.viz.report import render_report

    html = render_report(out, title=f"Robustness card: {model_path(args).name}")
    print(format_table(card_rows([card]), ["", model_path(args).name]))
    print(f"card: {out / CARD_FILE}\nreport: {html}")
    return 0


def card_rows(cards: list[dict[str, Any]]) -> list[list[Any]]:
    """The cards' headline numbers as rows, one column per card (for side-by-side tables)."""
    attacks = list(dict.fromkeys(name for card in cards for name in card.get("per_attack", {})))
    rows: list[list[Any]] = [
        ["data", *[f"{c['data']['source']} {c['data']['split']}" for c in cards]],
        ["images", *[c["data"]["images"] for c in cards]],
        [
            "threat model",
            *[f"{c['threat_model']['norm']} {c['threat_model']['eps']:.4g}" for c in cards],
        ],
        ["clean accuracy", *[c["clean_accuracy"] for c in cards]],
        ["robust accuracy", *[c["robust_accuracy"] for c in cards]],
        ["reached by", *[c["robust_attack"] for c in cards]],
    ]
    for name in attacks:
        rows.append([f"  {name}", *[c.get("per_attack", {}).get(name, "-") for c in cards]])
    rows.append(
        [
            "audit",
            *[
                "passed" if c["audit"]["passed"] else "FAILED: " + "; ".join(c["audit"]["failed"])
                for c in cards
            ],
        ]
    )
    rows.append(["seconds", *[f"{c['seconds']:.1f}" for c in cards]])
    rows.append(
        [
            "software",
            *[
                f"saddlepoint {c['software']['saddlepoint']}, torch {c['software']['torch']}"
                for c in cards
            ],
        ]
    )
    return rows


def card_section(card: dict[str, Any], name: str) -> Any:
    """The card as a run-log section, for the HTML report."""
    from saddlepoint.runlog import Section, Table

    checks = [
        ["PASS" if c["passed"] else "FAIL", c["name"], c["meaning"]]
        for c in card["audit"]["checks"]
    ]
    verdict = (
        "no sign of gradient masking"
        if card["audit"]["passed"]
        else ("signs of gradient masking: " + "; ".join(card["audit"]["failed"]))
    )
    verdict += "".join(f"; note: {note}" for note in card["audit"].get("notes", []))
    text = (
        f"{name} on {card['data']['images']} {card['data']['split']} images of "
        f"{card['data']['source']}, {card['threat_model']['norm']} eps "
        f"{card['threat_model']['eps']:.4g}: clean accuracy {card['clean_accuracy']:.4f}, robust "
        f"accuracy {card['robust_accuracy']:.4f} (the per-image worst case of every attack below; "
        f"reached by {card['robust_attack']}). Audit: {verdict}."
    )
    return Section(
        key="card",
        title=f"Robustness card: {name}",
        text=text,
        tables=[
            Table(
                "card", ["", name], card_rows([card]), "headline numbers and per-attack accuracy"
            ),
            Table("checks", ["", "check", "what failing means"], checks, "the audit's checks"),
        ],
        params={"card": card["model"].get("sha256", ""), "eps": card["threat_model"]["eps"]},
    )


def read_card(path: Path) -> dict[str, Any]:
    """A card from ``path`` (the JSON file, or the benchmark folder holding it)."""
    file = path / CARD_FILE if path.is_dir() else path
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file} is not a readable robustness card ({error}).") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ValueError(f"{file} is not a robustness card written by `saddlepoint benchmark`.")
    return card
