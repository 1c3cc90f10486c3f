"""The seed files: each loads, holds every setting its seed gives (the table below cites the seed
and section of each value), and runs end to end on its own dataset's format at a tiny size
(sizes overridden, nothing else)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from saddlepoint.experiments.studies import SOURCES, load_study, run_study
from saddlepoint.runlog import RunLog
from tests.data.formats import write_cifar_batches, write_idx_release

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
K = [k / 255 for k in range(1, 10)]  # seed 000's [[1, 9]] / 255

# file -> (study, dataset, {param: (the seed's value, where the seed gives it)})
SEED_VALUES: dict[str, tuple[str, str, dict[str, tuple[Any, str]]]] = {
    "seed000-s2-grid-cifar10.yaml": (
        "attack-grid",
        "cifar10",
        {
            "model": ("grid-cnn", "000 §2: 3 blocks of 32/64/128 filters, ReLU + BN, avg pool"),
            "images": (10000, "000 §2: the 10,000 test images"),
            "eps": (K, "000 §2: eps in [[1, 9]]/255"),
            "eta": (K, "000 §2: eta in [[1, 9]]/255"),
            "steps": (list(range(1, 9)), "000 §2: n in [[1, 8]]"),
            "losses": (["ce", "mse"], "000 §2: L in {CE, MSE}"),
            "norms": (["linf", "l2"], "000 §2: the Linf and the Euclidean ball"),
            "l2_step": ("sign", "000 §2.1.3: the same pixel perturbations in L2"),
            "top_eps": ({"linf": 8 / 255, "l2": 4 / 255}, "000 Tables 1-2: fixed radii"),
            "figure_eta": (1 / 255, "000 Fig 7: eta 1/255"),
            "figure_steps": (20, "000 Fig 7: n = 20"),
            "figure_loss": ("ce", "000 Fig 7: cross-entropy"),
        },
    ),
    "seed000-s3-transfer-cifar10.yaml": (
        "transfer",
        "cifar10",
        {
            "target": ("reference-cnn", "000 §3: 64/128/256, BN, avg pool, 635,786 params"),
            "depths": ([1, 2, 3, 4], "000 §3.2: 1-4 conv layers"),
            "depth_width": (64, "000 §3.2: the parameter counts fit 64 filters"),
            "widths": ([8, 16, 32, 64, 128, 256, 512], "000 §3.3: 8 to 512 filters"),
            "width_depth": (3, "000 §3.3: 3 layers"),
            "fgsm_eps": (2 / 255, "000 §3.2/§3.3: FGSM eta = 2/255"),
            "eps": (8 / 255, "000 §3.2/§3.3: PGD eps = 8/255"),
            "pgd_step": (2 / 255, "000 §3.2/§3.3: PGD eta = 2/255"),
            "pgd_steps": (50, "000 §3.2/§3.3: n = 50"),
        },
    ),
    "seed000-s4-overfitting-cifar10.yaml": (
        "overfitting",
        "cifar10",
        {
            "widths": (["small-cnn", "large-cnn"], "000 §4.3.1: 111,050 and 439,178 params"),
            "overtrain_epochs": (20, "000 §4.3.1: the 20e models"),
            "early_epochs": ([14, 7], "000 §4.3.1: 32 64 128 14e, 64 128 256 7e"),
            "dropout_epochs": ([14, 17], "000 §4.3.1: 14e drop, 17e drop"),
            "eps": (8 / 255, "000 §4.3.2: radius 0.031 (8/255)"),
            "pgd_step": (3 / 255, "000 §4.3.2: step 0.011 (3/255)"),
            "alpha": (0.01, "000 §4.3.2: alpha = 0.01"),
        },
    ),
    "seed000-s5-defenses-cifar10.yaml": (
        "defenses",
        "cifar10",
        {
            "weight_decay": (2e-4, "000 §5.0.4: L2 1e-4 (Keras' penalty: a 2e-4 w gradient)"),
            "epochs": (20, "000 §5.0.4-5: 20 epochs"),
            "batch_size": (128, "000 §5.0.4: batch size 128"),
            "eps": (0.05, "000 §5.0.3: epsilon = 0.05"),
            "attack_step": (0.1, "000 §5.0.3: eta = 0.1"),
            "attack_steps": (8, "000 §5.0.3: 8"),
            "quantize": ("tanh:8", "000 §5: tanh then 8 equal buckets"),
            "adversarial": ("pgd", "000 §5.0.5: AdvTrain on the PGD attack"),
            "at_fraction": (0.5, "000 §5.0.5: 50% original, 50% adversarial"),
        },
    ),
    "seed002-s2-fast-gradient-cifar10.yaml": (
        "fast-gradient",
        "cifar10",
        {
            "model": ("small-cnn", "002 §2.1: (Conv+ReLU+MaxPool)x3 + AvgPool + FC + FC"),
            "epochs": (40, "002 §2.1: 40 epochs"),
            "fgsm_eps": (0.031, "002 Table 1: FGSM eps 0.031"),
            "fgm_eps": (0.4, "002 Table 1: FGM eps 0.4"),
            "pgd_steps": (20, "002 §2.3.3: 20 iterations"),
            "pgd_linf_step": (0.05, "002 Table 2: eta 0.05"),
            "pgd_l2_step": (0.05, "002 Table 2: eta 0.05"),
            "train_images": (None, "002 Tables 1-2: the whole training set"),
            "test_images": (None, "002 Tables 1-2: the whole test set"),
        },
    ),
    "seed002-s3-adversarial-training-cifar10.yaml": (
        "adversarial-training",
        "cifar10",
        {
            "model": ("small-cnn", "002 §3.1: the architecture stays unchanged"),
            "epochs": (40, "002 §2.1: the original network"),
            "at_epochs": (10, "002 §3: about ten epochs"),
            "fgsm_eps": (0.031, "002 §2.2.4: 0.031 for all tests"),
            "pgd_steps": (20, "002 §2.3.3"),
            "pgd_step": (0.05, "002 Table 2"),
            "fraction": (1.0, "002 §3: retrain on the perturbed images"),
        },
    ),
    "seed002-s4-blackbox-cifar10.yaml": (
        "blackbox",
        "cifar10",
        {
            "model": ("small-cnn", "002 §2.1"),
            "epochs": (40, "002 §2.1"),
            "rule": ("kept", "002 §4.1: stop when the perturbation exceeds the bound"),
            "colour": (1.0, "002 §4.2: a white pixel"),
        },
    ),
    "seed003-deepfool-mnist.yaml": (
        "minimal-perturbations",
        "mnist",
        {
            "models": (["mlp", "mnist-cnn"], "003 own experiment: MLP 784-512-10; Fig 4 LeNet"),
            "fgsm_protocol": ("misclassify-90", "003 §7: an eps giving 90% misclassification"),
            "finetune_protocol": ("paper", "003 Fig 5: perturbed set only, half the rate"),
            "finetune_epochs": (5, "003 Fig 5: 5 additional epochs"),
            "curve_images": (1000, "003 Fig 5: rho_adv over the fine-tuning epochs"),
        },
    ),
    "seed004-generative-mnist.yaml": (
        "generative",
        "mnist",
        {
            "t": ([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64], "004: the seven intensities"),
            "modes": (["consecutive", "alternating"], "004: both modes"),
            "classifier": ("twoconv-bn-cnn", "004: 2 conv 5x5 + BN + ReLU + max-pool, one FC"),
            "classifier_epochs": (20, "004 consecutive: C1, C2 20 epochs"),
            "attacker_epochs": (20, "004: 20 attacker epochs in both modes"),
            "clean_epochs": (5, "004 alternating: 5 clean epochs first"),
            "c2_alongside": (True, "004 alternating: C2 trains 20 more clean epochs"),
            "loss": ("ce", "004: the negative cross-entropy"),
            "final_norm": (True, "004 FSConv4: batch norm, then tanh"),
            "width": (64, "004: Conv1 64 filters (64-128-256-512)"),
            "compare_t": ([0.04, 0.08], "004 Fig 6"),
        },
    ),
}

# The sizes each end-to-end run overrides (images, epochs, budgets; nothing the seed states
# as a setting of the experiment itself, except the grid's value lists, cut to the first two).
TINY: dict[str, dict[str, Any]] = {
    "seed000-s2-grid-cifar10.yaml": {"images": 2, "epochs": 1, "eps": K[:2], "eta": K[:2]},
    "seed000-s3-transfer-cifar10.yaml": {"images": 3, "epochs": 1, "widths": [8]},
    "seed000-s4-overfitting-cifar10.yaml": {
        "images": 3,
        "overtrain_epochs": 2,
        "early_epochs": [1, 1],
        "dropout_epochs": [1, 1],
        "steps": 10,
    },
    "seed000-s5-defenses-cifar10.yaml": {
        "images": 3,
        "epochs": 1,
        "audit_images": 3,
        "audit_steps": 2,
        "audit_queries": 20,
        "strong_steps": 2,
        "strong_queries": 20,
    },
    "seed002-s2-fast-gradient-cifar10.yaml": {"epochs": 1, "train_images": 4},
    "seed002-s3-adversarial-training-cifar10.yaml": {
        "epochs": 1,
        "at_epochs": 1,
        "train_images": 4,
        "strong_images": 3,
    },
    "seed002-s4-blackbox-cifar10.yaml": {"epochs": 1, "images": 3, "queries": 20},
    "seed003-deepfool-mnist.yaml": {
        "epochs": 1,
        "images": 10,
        "finetune_epochs": 2,
        "curve_images": 5,
    },
    "seed004-generative-mnist.yaml": {
        "t": [0.04, 0.08],
        "classifier_epochs": 1,
        "attacker_epochs": 1,
        "clean_epochs": 1,
        "width": 4,
    },
}


def same(value: Any, expected: Any) -> bool:
    """Equal, with floats compared to 1e-6 relative (k/255 is written out in the files)."""
    if isinstance(expected, dict):
        return (
            isinstance(value, dict)
            and value.keys() == expected.keys()
            and all(same(value[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(value, list)
            and len(value) == len(expected)
            and all(same(v, e) for v, e in zip(value, expected))
        )
    if isinstance(expected, float) and not isinstance(value, bool):
        return isinstance(value, int | float) and math.isclose(value, expected, rel_tol=1e-6)
    return value == expected


def test_every_seed_file_is_listed_here():
    assert sorted(p.name for p in EXPERIMENTS.glob("seed*.yaml")) == sorted(SEED_VALUES)


@pytest.mark.parametrize("name", sorted(SEED_VALUES))
def test_the_file_holds_the_seeds_settings(name):
    study = load_study(EXPERIMENTS / name)
    kind, dataset, values = SEED_VALUES[name]
    assert study["study"] == kind and study["dataset"]["name"] == dataset
    assert SOURCES[kind].startswith("seed " + name[4:7])
    for key, (expected, where) in values.items():
        assert key in study["params"], f"{name}: {key} missing ({where})"
        assert same(study["params"][key], expected), f"{name}: {key} is not the seed's ({where})"
    text = (EXPERIMENTS / name).read_text()
    for key in study["params"]:  # every setting says where it comes from, or that it is ours
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        previous = text.splitlines()[text.splitlines().index(line) - 1]
        assert "#" in line or previous.strip().startswith("#"), f"{name}: {key} uncommented"


def _tiny_dataset(root: Path, dataset: str) -> dict[str, Any]:
    if dataset == "cifar10":
        write_cifar_batches(root / "cifar10" / "cifar-10-batches-py", per_batch=8)
        return {"name": "cifar10", "options": {"root": str(root), "val_size": 8}}
    write_idx_release(root / "mnist", n_train=60, n_test=20)
    return {"name": "mnist", "options": {"root": str(root), "val_size": 10}}


@pytest.mark.parametrize("name", sorted(SEED_VALUES))
def test_the_file_runs_end_to_end_at_a_tiny_size(tmp_path, name):
    study = load_study(EXPERIMENTS / name)
    dataset = _tiny_dataset(tmp_path / "data", SEED_VALUES[name][1])
    params = {**study["params"], **TINY[name]}
    run_study(
        study, tmp_path / "run", progress=False, overrides={"dataset": dataset, "params": params}
    )
    with RunLog(tmp_path / "run") as log:
        sections = log.sections()
        meta = log.meta()
    assert sections and all(s.tables or s.figures for s in sections)
    assert all((tmp_path / "run" / path).is_file() for s in sections for path, _ in s.figures)
    if study["study"] == "blackbox":  # seed 002's randomly perturbed images (Figs 12-14)
        search = next(s for s in sections if s.key == "search")
        assert any(p.endswith("search-perturbed.png") for p, _ in search.figures)
    if study["study"] == "fast-gradient":  # seed 002's example figures (Figs 4-6)
        examples = next(s for s in sections if s.key == "examples")
        assert {p.rsplit("/", 1)[1] for p, _ in examples.figures} <= {
            "examples-correct.png",
            "examples-misclassified.png",
        } and examples.figures
    if study["study"] == "minimal-perturbations":  # seed 003 Fig 5: rho_adv over the epochs
        minimal = next(s for s in sections if s.key == "minimal")
        assert any(p.endswith("minimal-finetune-curve.png") for p, _ in minimal.figures)
        epochs = [r["epoch"] for r in minimal.table("finetune-curve").records()]
        assert epochs == [0, 1, 2] * 4  # two models, each fine-tuned on DeepFool and FGSM
    assert meta["source"] == SOURCES[study["study"]]
    changed = meta["changed from the file"]
    assert f"dataset = {dataset['name']}" in changed
    for key, value in TINY[name].items():  # the report says what the run changed
        assert (f"params.{key} = " in changed) == (not same(study["params"].get(key), value))


@pytest.mark.parametrize("name", sorted(n for n, v in SEED_VALUES.items() if v[1] == "cifar10"))
def test_the_cifar10_file_runs_on_28x28_images_too(tmp_path, name):
    # Every CIFAR-10 file has run on MNIST and Fashion-MNIST (--dataset): each
    # must build and run at 28x28 too (seed 000 §3's 4-block surrogate once could not).
    study = load_study(EXPERIMENTS / name)
    dataset = _tiny_dataset(tmp_path / "data", "mnist")
    params = {**study["params"], **TINY[name]}
    run_study(
        study, tmp_path / "run", progress=False, overrides={"dataset": dataset, "params": params}
    )
    with RunLog(tmp_path / "run") as log:
        sections = log.sections()
    assert sections and all(s.tables or s.figures for s in sections)
