"""Splitting a batch into shards attacked with their offsets changes no per-image outcome, for
every registered attack (in one process here; tests/experiments/test_cluster.py does it on a
Ray cluster)."""

import pytest
import torch

from saddlepoint.attacks import ATTACKS, PGD
from saddlepoint.attacks.distribute import SplitHere, distributed, join_results, shard_bounds
from saddlepoint.attacks.runtime import reproducible_plans
from tests.attacks.models import tiny_convnet
from tests.attacks.test_contract import make


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_split_into_shards_gives_each_image_its_result(name):
    model = tiny_convnet(seed=3)
    x = torch.rand(50, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.arange(50) % 4
    with reproducible_plans():
        whole = make(name, eps=0.1, seed=5)(model, x, y)
        with distributed(SplitHere(3)):
            split = make(name, eps=0.1, seed=5)(model, x, y)
    assert torch.equal(split.success, whole.success)
    assert torch.equal(split.predictions, whole.predictions)
    assert torch.equal(split.grad_evals, whole.grad_evals)
    assert torch.equal(split.queries, whole.queries)
    assert torch.allclose(split.adversarial, whole.adversarial, rtol=0, atol=1e-6)
    if "broken_by" in whole.extras:  # an ensemble's own choices stay with the caller
        assert torch.equal(split.extras["broken_by"], whole.extras["broken_by"])


def test_a_shard_is_attacked_as_it_would_be_in_the_whole_batch():
    model = tiny_convnet(seed=1)
    x = torch.rand(100, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    y = torch.arange(100) % 4
    attack = PGD(eps=0.1, steps=3, random_start=True, seed=7)
    whole = attack(model, x, y)
    shard = attack(model, x[70:], y[70:], offset=70)  # its random starts: images 70..99's
    moved = attack(model, x[70:], y[70:])  # offset 0: the draws of images 0..29
    assert torch.allclose(shard.adversarial, whole.adversarial[70:], atol=1e-6)
    assert not torch.allclose(moved.adversarial, whole.adversarial[70:], atol=1e-6)
    with pytest.raises(ValueError, match="'offset'"):
        attack(model, x, y, offset=-1)


def test_shards_cover_the_batch_in_order_and_join_back():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]  # never an empty shard
    assert shard_bounds(7, 1) == [(0, 7)]
    model = tiny_convnet(seed=0)
    x = torch.rand(9, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    y = torch.arange(9) % 4
    attack = PGD(eps=0.1, steps=2)
    parts = [attack(model, x[a:b], y[a:b], offset=a) for a, b in shard_bounds(9, 2)]
    joined = join_results(parts, seconds=1.5)
    assert torch.equal(joined.inputs, x) and torch.equal(joined.labels, y)
    assert joined.seconds == 1.5 and len(joined.logits) == 9
