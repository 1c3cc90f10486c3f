"""Ensembles: focused members run only on the survivors closest to the boundary."""

import math

import pytest
import torch

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.attacks.ensemble import Ensemble


class Recording(PGD):
    """PGD that keeps the inputs it was called on."""

    def __call__(self, model, x, y, **kwargs):
        self.seen = x.clone()
        return super().__call__(model, x, y, **kwargs)


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
    [([None], "one entry per attack"), ([None, 0.0], "in (0, 1]"), ([0.5, None], "first")],
)
def test_ensemble_shares_are_checked(shares, wrong):
    attacks = [PGD(eps=0.1), PGD(eps=0.1)]
    with pytest.raises(ValueError, match=wrong.replace("(", r"\(").replace("]", r"\]")):
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
