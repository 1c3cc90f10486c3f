"""scripts/retrain-variant.py: a study's network retrained with one setting changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scripts import load_script

RECIPE = {
    "architecture": "mlp",
    "epochs": 2,
    "model_args": {},
    "defense": {
        "name": "adversarial",
        "attack": "fgsm",
        "eps": 0.1,
        "fraction": 1.0,
        "warmup_epochs": 0,
        "regenerate": "epoch",
        "bpda": None,
    },
    "seed": 0,
    "train_limit": 600,
    "data": {"dataset": "digits", "options": {}},
    "batch_size": 32,
    "lr": 0.01,
    "schedule": "constant",
}


def _module():
    return load_script("retrain-variant.py")


def test_one_setting_changes_and_nothing_else() -> None:
    module = _module()
    changed = module.variant_recipe(RECIPE, ["defense.regenerate=batch", "epochs=3"])
    assert changed["defense"]["regenerate"] == "batch" and changed["epochs"] == 3
    assert RECIPE["defense"]["regenerate"] == "epoch", "the study's recipe is left as it was"
    rest = {k: v for k, v in changed.items() if k not in ("defense", "epochs")}
    assert rest == {k: v for k, v in RECIPE.items() if k not in ("defense", "epochs")}


@pytest.mark.parametrize("setting", ["train_limit=100", "defense.steps=3", "nosuch=1", "epochs"])
def test_settings_it_cannot_change_are_refused_by_name(setting: str) -> None:
    with pytest.raises(ValueError, match="--set") as error:
        _module().variant_recipe(RECIPE, [setting])
    assert setting.split("=")[0] in str(error.value)


def test_the_variant_trains_on_the_recipes_images_and_is_evaluated(tmp_path: Path) -> None:
    module = _module()
    recipe = module.variant_recipe(RECIPE, ["defense.regenerate=batch"])
    net, metadata = module.train_variant(recipe)
    assert metadata["recipe"]["defense"]["regenerate"] == "batch"
    assert len(metadata["history"]["epochs"]) == 2
    row = module.table3_row(net, recipe, 0.1, (5, 0.05), strong=16)
    assert row["clean"] > 0.5
    values = list(row.values())
    assert all(0.0 <= v <= row["clean"] for v in values[1:])
    assert row["PGD-5"] <= row["FGSM"] + 0.02
