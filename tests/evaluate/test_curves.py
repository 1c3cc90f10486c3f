"""Robustness curves in one call: fixed-radius attacks reuse what smaller radii broke,
minimal-norm attacks run once."""

from __future__ import annotations

import json

import pytest

from saddlepoint.attacks import build_attack
from saddlepoint.evaluate import robustness_curve
from saddlepoint.evaluate.robustness import robust_mask

RADII = [0.2, 0.02, 0.05, 0.1]  # any order; the curve answers in the order given


def test_a_fixed_radius_curve_falls_and_is_no_weaker_than_separate_runs(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:80], data.test.labels[:80]
    curve = robustness_curve(model, x, y, RADII, "pgd", steps=10)
    assert curve.radii == RADII and curve.norm == "linf" and curve.images == 80
    by_radius = dict(zip(curve.radii, curve.robust_accuracy))
    ordered = [by_radius[r] for r in sorted(RADII)]
    assert all(b <= a for a, b in zip(ordered, ordered[1:]))  # more budget never helps
    assert ordered[0] > ordered[-1]
    for radius in RADII:
        alone = robust_mask(build_attack("pgd", eps=radius, steps=10)(model, x, y))
        assert by_radius[radius] <= float(alone.float().mean()) + 1e-9
    smallest = robust_mask(build_attack("pgd", eps=0.02, steps=10)(model, x, y))
    assert by_radius[0.02] == pytest.approx(float(smallest.float().mean()))  # the same run


def test_a_minimal_norm_curve_reads_one_run_at_every_radius(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:60], data.test.labels[:60]
    result = build_attack("deepfool")(model, x, y)
    sizes = result.norms("l2")
    curve = robustness_curve(model, x, y, [0.01, 0.5, 1.0, 100.0], "deepfool")
    assert curve.norm == "l2"
    for radius, accuracy in zip(curve.radii, curve.robust_accuracy):
        broken = result.success & (sizes <= radius)
        assert accuracy == pytest.approx(float((result.clean_correct & ~broken).float().mean()))
    assert curve.robust_accuracy[-1] <= 1 - float(result.success.float().mean()) + 1e-9


def test_bad_radii_are_refused():
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="at least one radius"):
        robustness_curve(model, x, y, [])
    with pytest.raises(ValueError, match="'radii'"):
        robustness_curve(model, x, y, [0.1, -1])
    with pytest.raises(ValueError, match="Did you mean 'pgd'"):
        robustness_curve(model, x, y, [0.1], "PGD")


def test_the_command_line_prints_and_saves_the_curve(trained_digits, tmp_path, capsys):
    from saddlepoint.checkpoint import save_checkpoint
    from saddlepoint.cli.main import main

    model, data = trained_digits
    save_checkpoint(tmp_path / "m.safetensors", model, {"dataset": {"name": "digits"}})
    argv = [
        "--quiet",
        "attack",
        str(tmp_path / "m.safetensors"),
        "--attack",
        "pgd",
        "--steps",
        "10",
        "--limit",
        "80",
        "--radii",
        "0.02,0.05,0.1,0.2",
        "--save",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "curve.json").read_text())
    api = robustness_curve(
        model,
        data.test.images[:80],
        data.test.labels[:80],
        [0.02, 0.05, 0.1, 0.2],
        "pgd",
        steps=10,
        early_stop=True,
    )
    assert [r["robust_accuracy"] for r in saved] == pytest.approx(api.robust_accuracy)
    assert (tmp_path / "out" / "curve.png").stat().st_size > 1000
