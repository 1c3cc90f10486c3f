"""scripts/attack-members.py: each member of the strongest evaluation, run alone."""

from __future__ import annotations

from pathlib import Path

import torch

from saddlepoint.checkpoint import save_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.evaluate.robustness import strongest_attack
from saddlepoint.models import build_model
from tests.scripts import load_script


def _module():
    return load_script("attack-members.py")


def test_members_are_the_strongest_evaluations_own() -> None:
    members = _module().attacks_to_run(0.1, seed_pgd="8,0.05")
    ensemble = strongest_attack("linf", 0.1, seed=0)
    pgd_steps = [a.config()["steps"] for a in members[:2]]
    assert pgd_steps == [8, 100]
    assert [a.config() for a in members[2:]] == [a.config() for a in ensemble.attacks]
    assert [a.name for a in members[2:]] == [a.name for a in ensemble.attacks]


def test_rows_per_model_and_attack_never_exceed_clean_accuracy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("mlp", in_shape=(1, 8, 8), num_classes=10)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(data.train.images), data.train.labels).backward()
        optimiser.step()
    model.eval()
    path = save_checkpoint(
        tmp_path / "m.safetensors", model, {"dataset": {"name": "digits", "options": {}}}
    )
    module = _module()
    attacks = module.attacks_to_run(0.1, steps=3, queries=20)
    rows = list(module.member_rows([str(path)], attacks, images=24))
    x, y = data.test.images[:24], data.test.labels[:24]
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert clean > 0.5
    assert [name for _, name, *_ in rows] == [a.name for a in attacks]
    assert all(0.0 <= accuracy <= clean for *_, accuracy, _ in rows)
    assert min(accuracy for *_, accuracy, _ in rows) < clean  # eps 0.1 breaks some digits
