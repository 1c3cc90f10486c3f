"""Experiment files drawn at random, valid and not: each is either accepted as a spec whose every
configuration builds, or refused with a SpecError, never another exception (a traceback)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saddlepoint.attacks import build_attack
from saddlepoint.experiments.spec import SpecError, parse_spec

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 50),
    st.floats(-1.0, 2.0),
    st.sampled_from([float("nan"), float("inf")]),
    st.sampled_from(["8/255", "1..4 /100", "2..1", "abc", "linf", "l2", "ce", "mse", "", "1/0"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
ATTACK_KEYS = st.sampled_from(["eps", "step", "steps", "loss", "random_start", "norm", "seed"])
DATASET = st.dictionaries(
    st.sampled_from(["name", "split", "limit", "options", "limt"]),
    st.one_of(SCALARS, st.dictionaries(st.sampled_from(["size", "seed"]), SCALARS, max_size=2)),
    max_size=3,
)
FILES = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=5), st.integers()),
        "checkpoints": st.one_of(st.just(["m.safetensors"]), st.lists(SCALARS, max_size=2)),
        "attack": st.sampled_from(["pgd", "fgsm", "fgm", "pdg", "apgd-ce"]),
        "grid": st.one_of(st.dictionaries(ATTACK_KEYS, VALUES, max_size=3), SCALARS),
        "fixed": st.one_of(st.dictionaries(ATTACK_KEYS, SCALARS, max_size=2), SCALARS),
        "dataset": st.one_of(DATASET, SCALARS),
        "extra": SCALARS,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILES)
def test_random_experiment_files_are_accepted_whole_or_refused_in_one_line(data):
    text = yaml.safe_dump(data)
    try:
        spec = parse_spec(yaml.safe_load(text))
    except SpecError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message
        return
    # accepted: every configuration of the grid builds (nothing fails half-way through a run)
    for config in spec.configurations():
        build_attack(spec.attack, **{k: v for k, v in config.items() if k != "checkpoint"})


def test_a_range_under_fixed_is_refused_in_one_line():
    # found by the fuzz test above: a ValueError escaped instead of a SpecError
    data = {"attack": "pgd", "grid": {"steps": [1, 2]}, "fixed": {"eps": "1..4 /100"}}
    data["checkpoints"] = ["m.safetensors"]
    with pytest.raises(SpecError, match="ranges go under grid:"):
        parse_spec(data)
