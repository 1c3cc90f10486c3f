"""The one registry type: a mapping that refuses a second entry under a name and answers an
unknown name with the closest one."""

import pytest

from saddlepoint.attacks import ATTACKS
from saddlepoint.data import DATASETS
from saddlepoint.defenses import DEFENSES
from saddlepoint.experiments.studies import STUDIES
from saddlepoint.models import MODELS
from saddlepoint.registry import Registry
from saddlepoint.train.presets import TRAIN_RECIPES


def test_a_registry_keeps_order_refuses_duplicates_and_suggests_names():
    colours = Registry("colour")
    colours.register("red", 1)
    colours.register("green", 2)
    assert list(colours) == ["red", "green"] and colours["green"] == 2 and "red" in colours
    with pytest.raises(ValueError, match="colour named 'red' is already registered"):
        colours.register("red", 3)
    assert colours["red"] == 1  # the first entry stands
    with pytest.raises(ValueError, match="Unknown colour 'gren'. Did you mean 'green'"):
        colours.entry("gren")
    with pytest.raises(TypeError):
        colours["blue"] = 4  # read-only: entries come in through register


@pytest.mark.parametrize(
    "registry", [ATTACKS, MODELS, DATASETS, DEFENSES, STUDIES, TRAIN_RECIPES], ids=repr
)
def test_every_named_thing_lives_in_the_one_registry_type(registry):
    assert isinstance(registry, Registry) and len(registry) > 0
