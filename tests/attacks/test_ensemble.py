"""Ensembles: focused members run only on the survivors closest to the boundary."""

import math

import pytest
import torch
from torch import nn

from saddlepoint.attacks import ATTACKS, PGD, Square, build_attack
from saddlepoint.attacks.ensemble import Ensemble


class Recording(PGD):
    """PGD that keeps the inputs it was called on."""

    def __call__(self, model, x, y, **kwargs):
        self.seen = x.clone()
        return super().__call__(model, x, y, **kwargs)


class RecordingSquare(Square):
    """Square that keeps the inputs it was called on."""

    def __call__(self, model, x, y, **kwargs):
        self.seen = x.clone()
        return super().__call__(model, x, y, **kwargs)


class PartlyMasked(nn.Module):
    """Binarizes (a zero input gradient) the images whose corner pixel is set, and passes the
    others through: half a masked model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        masked = (x[:, :, :1, :1] > 0.5).float()
        return self.model(masked * (x > 0.5).float() + (1 - masked) * x)


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    own = logits.gather(1, y[:, None]).squeeze(1)
    return own - logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def test_a_focused_member_sees_only_the_closest_share_of_the_survivors(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:80], data.test.labels[:80]
    first = PGD(eps=0.05, steps=3)
    focused = Recording(eps=0.05, steps=5)
    Ensemble([first, focused], [None, 0.25])(model, x, y)
    alone = first(model, x, y)  # deterministic under its seed: the ensemble's first pass
    survivors = (~alone.success).nonzero().squeeze(1)
    assert len(survivors) >= 8  # the test means something only with survivors to choose from
    keep = math.ceil(0.25 * len(survivors))
    closest = survivors[margins(alone.logits, y)[survivors].argsort(stable=True)[:keep]]
    assert focused.seen.shape[0] == keep
    assert torch.equal(focused.seen, x[closest])


def test_an_unfocused_ensemble_runs_later_members_on_every_survivor(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:80], data.test.labels[:80]
    first, later = PGD(eps=0.05, steps=3), Recording(eps=0.05, steps=5)
    Ensemble([first, later])(model, x, y)
    assert later.seen.shape[0] == int((~first(model, x, y).success).sum())


@pytest.mark.parametrize(
    "shares, wrong",
    [
        ([None], "one entry per attack"),
        ([None, -0.1], "in [0, 1]"),
        ([None, 1.5], "in [0, 1]"),
        ([None, 0.0], "for query-only attacks"),
        ([0.5, None], "first"),
    ],
)
def test_ensemble_shares_are_checked(shares, wrong):
    attacks = [PGD(eps=0.1), PGD(eps=0.1)]
    with pytest.raises(ValueError, match=wrong.replace("[", r"\[").replace("]", r"\]")):
        Ensemble(attacks, shares)


def test_adaptive_names_its_focused_members_and_reports_them_in_its_config():
    ensemble = build_attack("adaptive", eps=0.3)
    assert ensemble.labels() == [
        "apgd-ce",
        "apgd-dlr",
        "apgd-t",
        "apgd-ce (closest 25%)",
        "apgd-t (closest 10%)",
        "square (closest 10%)",
    ]
    config = ensemble.config()["attacks"]
    assert [member.get("share") for member in config] == [None, None, None, 0.25, 0.1, 0.1]
    assert config[3]["restarts"] == 7 and config[5]["queries"] == 5000
    assert config[2]["target_classes"] == 3 and config[4]["target_classes"] == 9


def test_a_focused_query_member_also_gets_every_survivor_without_a_gradient(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:80].clone(), data.test.labels[:80]
    x[::2, :, 0, 0] = 1.0  # every other image goes through the binarizer
    masked = torch.zeros(len(y), dtype=torch.bool)
    masked[::2] = True
    net = PartlyMasked(model).eval()
    first = PGD(eps=0.05, steps=3)
    square = RecordingSquare(eps=0.05, queries=20)
    Ensemble([first, square], [None, 0.1])(net, x, y)
    alone = first(net, x, y)
    survivors = (~alone.success).nonzero().squeeze(1)
    flat = survivors[masked[survivors]]
    keep = math.ceil(0.1 * len(survivors))
    closest = survivors[margins(alone.logits, y)[survivors].argsort(stable=True)[:keep]]
    assert len(flat) >= 10 and len(flat) > keep  # more than the share alone would take
    expected = torch.cat([closest, flat]).unique()
    assert torch.equal(square.seen, x[expected])


def test_a_query_member_with_share_zero_gets_only_the_survivors_without_a_gradient(
    trained_digits,
):
    model, data = trained_digits
    x, y = data.test.images[:80].clone(), data.test.labels[:80]
    x[::2, :, 0, 0] = 1.0
    masked = torch.zeros(len(y), dtype=torch.bool)
    masked[::2] = True
    net = PartlyMasked(model).eval()
    first = PGD(eps=0.05, steps=3)
    square = RecordingSquare(eps=0.05, queries=20)
    ensemble = Ensemble([first, square], [None, 0.0])
    assert ensemble.labels() == ["pgd", "square (no gradient)"]
    ensemble(net, x, y)
    survivors = (~first(net, x, y).success).nonzero().squeeze(1)
    flat = survivors[masked[survivors]]
    assert 10 <= len(flat) < len(survivors)  # some survivors have a gradient and are left out
    assert torch.equal(square.seen, x[flat])


def test_a_preset_is_stale_when_a_members_revision_changes(monkeypatch):
    preset = ATTACKS["autoattack"].builder
    before = preset.revision
    assert len(before) == 4
    monkeypatch.setattr(Square, "revision", Square.revision + 1)
    assert preset.revision != before
