"""Every argument of a study reaches the key of what it changes, and nothing else re-runs.

The arguments are read from each study's signature: a study that gains an argument fails here
until the argument has a second value below, so no argument can be left out of the keys (as
``top_eps`` once was, when a new radius printed "already done" and kept the old tables)."""

import inspect
import shutil

import pytest

from saddlepoint.experiments.studies import STUDIES, run_study
from saddlepoint.runlog import RunLog

# Each study at a tiny size, and for every argument of its signature another valid value.
CASES = {
    "attack-grid": (
        dict(model="mlp", epochs=1, images=12, eps=[0.05, 0.1], eta=[0.02], steps=[1, 2]),
        dict(
            losses=["mse"],
            norms=["linf"],
            l2_step="sign",
            top_eps={"linf": 0.05},
            figure_eps=0.05,
            figure_eta=0.01,
            figure_steps=1,
            figure_loss="mse",
            model="cnn",
            epochs=2,
            images=10,
            eps=[0.05],
            eta=[0.01],
            steps=[1],
        ),
    ),
    "overfitting": (
        dict(widths=["cnn"], overtrain_epochs=2, epochs=1, images=12, steps=3),
        dict(
            widths=["mlp"],
            overtrain_epochs=3,
            epochs=2,
            patience=1,
            dropout=0.5,
            dropout_epochs=[2],
            early_epochs=[2],
            schedule="constant",
            lr=1e-3,
            images=10,
            eps=0.2,
            steps=2,
            pgd_step=0.05,
            alpha=0.5,
            pgd_random_start=False,
            head_dropout=False,
            variants=["dropout"],
        ),
    ),
    "defenses": (
        dict(
            model="mlp",
            epochs=1,
            images=12,
            audit_images=6,
            strong_steps=2,
            strong_queries=10,
            audit_steps=2,
            audit_queries=10,
            attack_steps=2,
        ),
        dict(
            model="cnn",
            epochs=2,
            eps=0.2,
            noise=0.2,
            quantize="tanh:4",
            images=10,
            audit_images=5,
            strong_steps=3,
            strong_queries=12,
            audit_steps=3,
            audit_queries=12,
            model_args={"hidden": 32},
            weight_decay=1e-4,
            batch_size=32,
            attack_steps=3,
            attack_step=0.05,
            adversarial="pgd",
            at_fraction=0.5,
            adversarial_epochs=2,
            decay_on="kernels",
            models=["reference", "quantized"],
        ),
    ),
    "transfer": (
        dict(
            target="cnn", depths=[1], depth_width=4, widths=[4], width_depth=1, epochs=1, images=12
        ),
        dict(
            target="small-cnn",
            depths=[2],
            depth_width=8,
            widths=[8],
            width_depth=2,
            epochs=2,
            images=10,
            eps=0.1,
            pgd_steps=3,
            fgsm_eps=0.05,
            pgd_step=0.02,
            pgd_random_start=False,
            surrogate_pad_to=16,
        ),
    ),
    "fast-gradient": (
        dict(model="mlp", epochs=1, train_images=20, test_images=12, pgd_steps=2),
        dict(
            model="cnn",
            epochs=2,
            batch_size=16,
            lr=3e-3,
            schedule="onecycle",
            fgsm_eps=0.05,
            fgm_eps=0.5,
            curve_eps=[0.0, 0.1],
            pgd_steps=3,
            pgd_linf_step=0.02,
            pgd_l2_step=0.1,
            train_images=10,
            test_images=10,
        ),
    ),
    "adversarial-training": (
        dict(model="mlp", epochs=1, at_epochs=1, train_images=20, test_images=12, strong_images=1),
        dict(
            model="cnn",
            epochs=2,
            at_epochs=2,
            batch_size=16,
            lr=3e-3,
            schedule="onecycle",
            fgsm_eps=0.05,
            pgd_steps=3,
            pgd_step=0.02,
            fraction=0.5,
            train_images=10,
            test_images=10,
            strong_images=2,
        ),
    ),
    "generative": (
        dict(
            t=[0.1],
            modes=["consecutive"],
            classifier="cnn",
            classifier_epochs=1,
            attacker_epochs=1,
            width=4,
            images=20,
        ),
        dict(
            t=[0.2],
            modes=["alternating"],
            classifier="mlp",
            classifier_epochs=2,
            attacker_epochs=2,
            clean_epochs=2,
            width=8,
            loss="ce",
            final_norm=True,
            c2_alongside=True,
            clip=False,
            compare_t=[0.1],
            images=10,
            bound="clamp",
            lr=1e-3,
        ),
    ),
    "convergence": (
        dict(models=["mlp"], epochs=1, images=12, steps=5),
        dict(models=["cnn"], epochs=2, images=10, eps=0.2, step=0.01, steps=4, tol=1e-2),
    ),
    "minimal-perturbations": (
        dict(models=["mlp"], epochs=1, images=12, fgsm_eps=[0.1, 0.3], finetune_epochs=1),
        dict(
            models=["cnn"],
            epochs=2,
            images=10,
            fgsm_eps=[0.2, 0.3],
            finetune_epochs=2,
            fgsm_protocol="misclassify-90",
            finetune_protocol="paper",
            finetune_fgsm_eps=0.2,
            lr=1e-3,
            schedule="constant",
            curve_images=5,
        ),
    ),
    "blackbox": (
        dict(model="mlp", epochs=1, images=12, eps=[0.1], queries=10, heatmaps=1),
        dict(
            model="cnn",
            epochs=2,
            images=10,
            eps=[0.2],
            step=0.05,
            queries=12,
            heatmaps=2,
            colour=0.0,
            norm="l2",
            rule="kept",
            batch_size=32,
            lr=1e-3,
            schedule="constant",
        ),
    ),
}


def _sections(folder):
    with RunLog(folder) as log:
        return {s.key: (s.params["_key"], s.seconds) for s in log.sections()}


def _cache(folder):
    return {p.relative_to(folder) for p in (folder / "cache").rglob("*.json")}


def _run(name, folder, params):
    spec = {"study": name, "dataset": {"name": "digits"}, "seed": 0, "params": params}
    run_study(spec, folder, progress=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_changing_any_argument_reruns_what_it_feeds_and_only_that(name, tmp_path, monkeypatch):
    from saddlepoint.experiments.studies import robust_nets

    real = robust_nets.strongest_attack  # keys are the point here, not the evaluation's strength
    monkeypatch.setattr(
        robust_nets, "strongest_attack", lambda *a, **o: real(*a, **o, steps=3, queries=10)
    )
    base, other = CASES[name]
    arguments = [p for p in inspect.signature(STUDIES[name]).parameters if p != "ctx"]
    assert sorted(other) == sorted(arguments), "give every argument of the study a second value"
    first = tmp_path / "first"
    _run(name, first, base)
    recorded, cached = _sections(first), _cache(first)
    for argument in arguments:
        default = inspect.signature(STUDIES[name]).parameters[argument].default
        assert other[argument] != base.get(argument, default), f"{argument}: not a change"
        folder = tmp_path / argument
        shutil.copytree(first, folder)
        _run(name, folder, {**base, argument: other[argument]})
        again = _sections(folder)
        rerun = {key for key in again if again[key] != recorded.get(key)}
        new_tasks = _cache(folder) - cached
        assert rerun or new_tasks, f"changing {argument!r} re-ran nothing"
        for key, (digest, seconds) in again.items():  # rebuilt exactly when its key changed
            if key in recorded:
                assert (digest == recorded[key][0]) == (seconds == recorded[key][1]), key


def test_studies_are_short_declarations_without_hand_written_keys():
    """Every function under experiments/studies/ fits in 80 lines, and none builds a cache key:
    keys come from the engine only (no 'params' dict handed to a cache)."""
    import ast
    from pathlib import Path

    import saddlepoint.experiments.studies as package

    for path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.name}: {node.name} has {length} lines"
            if isinstance(node, ast.Attribute) and node.attr in ("kept", "part_key", "store_path"):
                raise AssertionError(f"{path.name}: ctx.{node.attr} keys a result by hand")
