"""Contract tests every registered attack gets: bounds, ball, modes, no parameter gradients,
inputs untouched, determinism, and independence from the sub-batch size. They run on every
device available (the ``device`` fixture; ``make test-device`` runs only them)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saddlepoint import lp
from saddlepoint.attacks import ATTACKS, build_attack
from tests.attacks.models import tiny_convnet

DEVICE_TESTS = pytest.mark.device

FAST = {"steps": 3}
FAST_ARGS = {
    "fgsm": {},
    "fgsm-rs": {},
    "fgm": {},
    "bim": FAST,
    "pgd": {**FAST, "restarts": 2},
    "apgd": {"steps": 5},
    "apgd-dlr": {"steps": 5},
    "apgd-ensemble": {"steps": 5},
    "apgd-t": {"steps": 5, "target_classes": 2},
    "apgd-ce-t": {"steps": 5},
    "apgd-strong": {"steps": 5},
    "autoattack": {"steps": 5, "target_classes": 2, "queries": 20},
    "autoattack-rand": {"steps": 3},
    "adaptive": {"steps": 5, "queries": 20},
    "strongest": {"steps": 5, "target_classes": 2, "queries": 20},
    "fab": {"steps": 5},
    "fab-t": {"steps": 5, "target_classes": 2},
    "fab-minimal": {"steps": 5, "restarts": 2},
    "deepfool": {"steps": 5},
    "cw": {"steps": 5, "search_steps": 2},
    "random-search": {"queries": 20},
    "square": {"queries": 20},
    "rays": {"queries": 30},
    "hsj": {"queries": 60, "init_evals": 8, "init_tries": 5},
    "hsj-minimal": {"queries": 60, "init_evals": 8, "init_tries": 5},
    "boundary": {"queries": 60, "init_tries": 5},
    "boundary-minimal": {"queries": 60, "init_tries": 5},
    "one-pixel": {"popsize": 8, "queries": 33},
    "pixel-sweep": {},
}


def make(name: str, **extra):
    kwargs = dict(FAST_ARGS[name])
    accepted = ATTACKS[name].arguments()
    kwargs.update({k: v for k, v in extra.items() if k in accepted})
    return build_attack(name, **kwargs)


def test_every_registered_attack_has_fast_settings():
    assert set(FAST_ARGS) == set(ATTACKS)


@DEVICE_TESTS
@pytest.mark.parametrize("name", sorted(ATTACKS))
@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(1, 9),
    size=st.integers(4, 7),
    channels=st.sampled_from([1, 3]),
    eps=st.floats(0.01, 0.5),
    low=st.floats(-1.0, 0.2),
    width=st.floats(0.3, 2.0),
    seed=st.integers(0, 50),
)
def test_results_stay_in_bounds_and_ball(device, name, n, size, channels, eps, low, width, seed):
    model = tiny_convnet(channels, seed=seed).to(device)
    bounds = (low, low + width)
    g = torch.Generator().manual_seed(seed)
    x = low + width * torch.rand(n, channels, size, size, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    for norm in getattr(ATTACKS[name].builder, "supported_norms", ("linf", "l2")):
        accepted = ATTACKS[name].arguments()
        if "norm" in accepted and accepted["norm"] != norm and name in ("fgsm", "fgm"):
            continue
        attack = make(name, eps=eps, norm=norm, bounds=bounds, seed=seed)
        result = attack(model, x, y)
        adv = result.adversarial
        assert adv.shape == x.shape and torch.isfinite(adv).all()
        assert float(adv.min()) >= bounds[0] - 1e-6 and float(adv.max()) <= bounds[1] + 1e-6
        attack_obj = attack.attacks[0] if hasattr(attack, "attacks") else attack
        if not attack_obj.minimal:
            assert (lp.norms(adv - x, attack_obj.norm) <= attack_obj.eps * (1 + 1e-5) + 1e-6).all()


@DEVICE_TESTS
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_modes_gradients_and_inputs_are_untouched(device, name):
    model = tiny_convnet().to(device)
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    frozen = model[0].weight
    frozen.requires_grad_(False)
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 4
    before = x.clone()
    make(name, eps=0.1)(model, x, y)
    assert torch.equal(x, before)
    assert model.training and not model[1].training and model[3].training
    assert not frozen.requires_grad and model[6].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


@DEVICE_TESTS
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_same_seed_same_result_and_sub_batches_agree(device, name):
    model = tiny_convnet(seed=3).to(device)
    x = torch.rand(70, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.arange(70) % 4
    whole = make(name, eps=0.1, batch_size=70, seed=5)(model, x, y)
    again = make(name, eps=0.1, batch_size=70, seed=5)(model, x, y)
    split = make(name, eps=0.1, batch_size=9, seed=5)(model, x, y)
    if device.type == "cpu":
        assert torch.equal(whole.adversarial, again.adversarial)
    else:  # GPU kernels may reorder sums between runs
        assert torch.allclose(whole.adversarial, again.adversarial, atol=1e-6)
    assert torch.allclose(whole.adversarial, split.adversarial, atol=1e-5)


def test_inputs_outside_bounds_are_refused():
    model = tiny_convnet()
    with pytest.raises(ValueError, match="bounds"):
        build_attack("pgd", eps=0.1)(
            model, torch.full((2, 1, 4, 4), 2.0), torch.zeros(2, dtype=torch.long)
        )


UNTARGETED_ONLY = ["boundary", "boundary-minimal", "deepfool", "hsj", "hsj-minimal", "rays"]


@pytest.mark.parametrize("name", UNTARGETED_ONLY)
def test_untargeted_attacks_refuse_targets_before_any_query(name):
    model = tiny_convnet()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    x, y = torch.rand(3, 1, 6, 6), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="is untargeted; call it without 'targets'"):
        make(name, eps=0.1)(model, x, y, targets=torch.tensor([1, 2, 0]))
    assert not calls


def test_unknown_attack_and_arguments_are_explained():
    with pytest.raises(ValueError, match="Did you mean 'pgd'"):
        build_attack("pdg")
    with pytest.raises(TypeError, match="'stpes'.*Did you mean 'steps'"):
        build_attack("pgd", stpes=3)
    with pytest.raises(TypeError, match="'eps'"):
        build_attack("deepfool", eps=0.3)
    with pytest.raises(ValueError, match="'restarts' parameter of PGD"):
        build_attack("bim", restarts=3)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_randomized_model_gets_results_in_bounds_and_ball_and_modes_back(name):
    """A model whose output is random (noise on every input): every attack still returns
    points in the bounds and the ball, leaves the model's modes as they were, and reports
    success on the logits it actually got."""
    from saddlepoint.defenses.eot import RandomNoiseInput

    model = RandomNoiseInput(tiny_convnet(seed=1), scale=0.2)
    model.train()
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    y = torch.arange(8) % 4
    torch.manual_seed(0)
    attack = make(name, eps=0.1, seed=1)
    result = attack(model, x, y)
    adv = result.adversarial
    assert torch.isfinite(adv).all() and float(adv.min()) >= 0 and float(adv.max()) <= 1
    attack_obj = attack.attacks[0] if hasattr(attack, "attacks") else attack
    if not attack_obj.minimal:
        assert (lp.norms(adv - x, attack_obj.norm) <= 0.1 * (1 + 1e-5) + 1e-6).all()
    assert model.training
    assert torch.equal(result.success, result.logits.argmax(1) != y)
