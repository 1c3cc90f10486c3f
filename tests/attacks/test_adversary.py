"""Every registered attack, ensembles included, is an Adversary: the one protocol code that takes
"an attack" relies on (name, config, call on (model, x, y), perturb)."""

import pytest

from saddlepoint.attacks import ATTACKS, Adversary, Attack, Ensemble, build_attack


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_registered_attack_is_an_adversary(name):
    options = {} if ATTACKS[name].minimal else {"eps": 0.1}
    built = build_attack(name, **options)
    assert isinstance(built, Adversary) and isinstance(built, Attack | Ensemble)
    assert isinstance(built.name, str) and isinstance(built.config(), dict)


def test_something_that_is_not_an_attack_is_not_an_adversary():
    assert not isinstance(object(), Adversary)
    assert not isinstance(lambda model, x, y: None, Adversary)
