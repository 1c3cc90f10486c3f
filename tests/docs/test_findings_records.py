"""Every findings page's numbers trace to records in the tree.

A page that keeps its run's records (``docs/studies/RUN/run.sqlite``) is checked here as the
seed-file tests check the seeds' values: a few numbers the page quotes are read back from the
table they come from. A page whose records drift from its text, or records that go missing,
fail. The manifest beside the records (``models.json``) must list every model with its SHA-256.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from saddlepoint.runlog import RunLog

STUDIES = Path(__file__).resolve().parents[2] / "docs" / "studies"

# (run, file that quotes it, table, {column: value} picking the row, column, quoted percentage)
QUOTED = [
    ("seed000-s2-fashion", "findings.md", "top-linf", {}, "accuracy", "22.1"),
    ("seed000-s2-fashion", "findings.md", "model", {"model": "grid-cnn"}, "test acc", "92.8"),
    (
        "seed000-s3-mnist",
        "findings.md",
        "models",
        {"model": "target reference-cnn"},
        "test acc",
        "99.34",
    ),
    ("seed000-s3-fashion", "findings.md", "whitebox", {"attack": "PGD-50"}, "target acc", "36.95"),
    (
        "seed000-s3-fashion",
        "findings.md",
        "transfer",
        {"family": "width", "value": 8, "attack": "PGD-50"},
        "target acc",
        "86.85",
    ),
    (
        "seed000-s3-fashion",
        "findings.md",
        "models",
        {"model": "target reference-cnn"},
        "test acc",
        "91.71",
    ),
    (
        "seed000-s3-check-eps0.2",
        "../seed000-s3-mnist/findings.md",
        "transfer",
        {"family": "depth", "value": 1, "attack": "PGD-50"},
        "target acc",
        "58.1",
    ),
    (
        "seed000-s4-fashion",
        "findings.md",
        "robust",
        {"model": "small-cnn over-trained"},
        "PGD acc",
        "57.25",
    ),
    (
        "seed000-s4-fashion",
        "findings.md",
        "robust",
        {"model": "large-cnn dropout 0.25"},
        "PGD acc",
        "64.95",
    ),
    ("seed000-s5-mnist", "findings.md", "defenses", {"model": "reference"}, "clean acc", "99.44"),
    (
        "seed000-s5-mnist",
        "findings.md",
        "defenses",
        {"model": "reference"},
        "robust accuracy",
        "27.8",
    ),
    (
        "seed000-s5-fashion",
        "findings.md",
        "defenses",
        {"model": "reference"},
        "robust accuracy",
        "1.5",
    ),
    (
        "seed000-s5-fashion",
        "findings.md",
        "defenses",
        {"model": "adversarial training (PGD, 50% of each batch)"},
        "robust accuracy",
        "60.5",
    ),
    (
        "seed000-s4-check-dropout-ours",
        "../seed000-s4-mnist/findings.md",
        "robust",
        {"model": "small-cnn dropout 0.25"},
        "PGD acc",
        "94.10",
    ),
    (
        "seed000-s4-check-dropout-seed",
        "../seed000-s4-mnist/findings.md",
        "robust",
        {"model": "large-cnn dropout 0.25"},
        "PGD acc",
        "95.70",
    ),
    (
        "seed000-s5-check-8epochs",
        "../seed000-s5-mnist/findings.md",
        "defenses",
        {},
        "robust accuracy",
        "92.0",
    ),
    (
        "seed000-s5-check-ours",
        "../seed000-s5-mnist/findings.md",
        "defenses",
        {"model": "reference"},
        "robust accuracy",
        "50.7",
    ),
    (
        "seed000-s5-check-seed",
        "../seed000-s5-mnist/findings.md",
        "defenses",
        {"model": "reference"},
        "robust accuracy",
        "39.0",
    ),
    ("seed002-s2-fashion", "findings.md", "fast-gradient", {"split": "test"}, "FGSM", "50.7"),
    (
        "seed002-s3-mnist",
        "findings.md",
        "table3",
        {"network": "original", "split": "test"},
        "AutoAttack",
        "95.4",
    ),
    (
        "seed002-s3-mnist",
        "findings.md",
        "table3",
        {"network": "PGD-AT", "split": "test"},
        "AutoAttack",
        "95.2",
    ),
    (
        "seed002-s3-fashion",
        "findings.md",
        "table3",
        {"network": "original", "split": "test"},
        "FGSM",
        "54.57",
    ),
    (
        "seed002-s3-fashion",
        "findings.md",
        "table3",
        {"network": "PGD-AT", "split": "test"},
        "AutoAttack",
        "53.2",
    ),
    ("seed002-s4-fashion", "findings.md", "pixels", {}, "clean acc", "91.0"),
    (
        "seed002-s4-fashion",
        "findings.md",
        "search",
        {"method": "Square", "eps": 1},
        "accuracy",
        "18.1",
    ),
    (
        "seed004-mnist",
        "findings.md",
        "final",
        {"mode": "consecutive", "t": 0.01},
        "c1_attacked_accuracy",
        "96.95",
    ),
    (
        "seed003-mnist",
        "findings.md",
        "accuracy",
        {"classifier": "mlp", "attack": "FGSM", "eps": 0.12},
        "accuracy",
        "27.98",
    ),
    (
        "seed003-mnist",
        "findings.md",
        "accuracy",
        {"classifier": "mlp", "attack": "clean"},
        "accuracy",
        "97.89",
    ),
    ("seed004-check-cw", "../README.md", "final", {}, "c1_attacked_accuracy", "90.55"),
    (
        "seed004-check-10k",
        "../README.md",
        "final",
        {"mode": "consecutive"},
        "c1_clean_accuracy",
        "98.25",
    ),
    (
        "seed004-check-noclip",
        "../seed004-mnist/findings.md",
        "final",
        {"mode": "consecutive", "t": 0.08},
        "c1_attacked_accuracy",
        "81.35",
    ),
]


def _table(run: str, name: str):
    with RunLog(STUDIES / run, readonly=True) as log:
        tables = [t for section in log.sections() for t in section.tables if t.name == name]
    assert len(tables) == 1, f"{run}: no single table {name!r} in its records"
    return tables[0]


@pytest.mark.parametrize(("run", "page", "table", "row", "column", "quoted"), QUOTED)
def test_a_quoted_number_is_in_the_records(run, page, table, row, column, quoted):
    text = (STUDIES / run / page).read_text()
    assert re.search(rf"(?<![\d.]){re.escape(quoted)}(?![\d])", text), f"{page} lost {quoted}"
    records = _table(run, table)
    rows = [r for r in records.records() if all(r.get(k) == v for k, v in row.items())]
    assert rows, f"{run}: no row of {table!r} has {row}"
    (name,) = [c for c in records.columns if c.startswith(column)]
    value = rows[0][name]
    decimals = len(quoted.split(".")[1])
    assert isinstance(value, float) and not math.isnan(value)
    assert f"{100 * value:.{decimals}f}" == quoted


def test_every_run_with_records_has_a_manifest_and_is_quoted_above():
    runs = sorted(p.parent.name for p in STUDIES.glob("*/run.sqlite"))
    assert runs and set(runs) == {q[0] for q in QUOTED}
    for run in runs:
        manifest = json.loads((STUDIES / run / "models.json").read_text())
        assert manifest["run"] == run and manifest["models"]
        for model in manifest["models"]:
            assert len(model["sha256"]) == 64 and model["model"]["name"]


def test_no_weights_or_run_state_are_kept_in_the_docs():
    kept = [p for p in STUDIES.rglob("*") if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt")]
    assert not kept
