import json

import pytest

from saddlepoint.checkpoint import read_metadata
from saddlepoint.cli.main import build_parser, main
from saddlepoint.data import DATASETS
from saddlepoint.models import MODELS
from saddlepoint.runlog import RunLog


def run(capsys, *argv):
    code = main(["--quiet", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_lists_seed_counts(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "small-cnn" in out and "111,050" in out and "407,050" in out


def test_models_for_a_given_shape(capsys):
    code, out, _ = run(capsys, "models", "--in-shape", "3x32x32")
    assert code == 0 and "11,173,962" in out


def test_data_list_and_info(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and "fashion-mnist" in out and "cifar10" in out
    code, out, _ = run(capsys, "data", "info", "digits", "--data-option", "size=16")
    assert code == 0 and "1x16x16" in out and "train" in out


def test_train_then_evaluate(capsys, tmp_path):
    ckpt = tmp_path / "m.safetensors"
    code, out, err = run(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--out",
        str(ckpt),
        "--plot",
    )
    assert code == 0, err
    assert "test acc" in out and ckpt.is_file() and (tmp_path / "m.png").is_file()
    meta = read_metadata(ckpt)
    assert meta["train"]["epochs"] == 2 and len(meta["history"]["epochs"]) == 2
    code, out, err = run(capsys, "evaluate", str(ckpt), "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    assert "confusion matrix" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"])
    assert len(report["per_class_accuracy"]) == 10


def test_config_file_sets_options_and_command_line_wins(capsys, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        "dataset: digits\nmodel: mlp\nepochs: 3\nbatch-size: 32\nmodel_arg:\n  hidden: [32]\n"
    )
    ckpt = tmp_path / "c.safetensors"
    code, _, err = run(
        capsys, "train", "--config", str(config), "--epochs", "1", "--out", str(ckpt)
    )
    assert code == 0, err
    meta = read_metadata(ckpt)
    assert meta["train"]["epochs"] == 1  # the command line wins
    assert meta["train"]["batch_size"] == 32  # from the file
    assert meta["model"]["kwargs"]["hidden"] == [32]


def test_recipe_fills_what_the_config_and_command_line_leave(tmp_path):
    """--recipe mnist-robust stands for its measured options; a config file's values and the
    command line's win over it, in that order; every preset is valid for `train`."""
    from saddlepoint.cli.main import parse
    from saddlepoint.train.presets import TRAIN_RECIPES

    parser = build_parser()
    args = parse(parser, ["train", "--recipe", "mnist-robust"])
    assert (args.dataset, args.model, args.epochs, args.defense) == (
        "mnist",
        "mnist-cnn",
        20,
        "trades",
    )
    assert (args.precision, args.memory_format) == ("bf16", "channels_last")
    assert (args.defense_eps, args.defense_steps, args.defense_step, args.beta) == (
        "0.3",
        10,
        "0.05",
        6.0,
    )
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 12\nbeta: 3\n")
    args = parse(
        parser, ["train", "--recipe", "mnist-robust", "--config", str(config), "--beta", "1"]
    )
    assert (args.epochs, args.beta, args.dataset) == (12, 1.0, "mnist")
    for name in TRAIN_RECIPES:  # each preset parses and names an existing model and dataset
        args = parse(parser, ["train", "--recipe", name])
        assert args.model in MODELS and args.dataset in DATASETS and args.defense


def test_bad_config_key_names_it(capsys, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("epoch: 3\n")
    code, _, err = run(capsys, "train", "--config", str(config))
    assert code == 2
    assert "'epoch'" in err and "Did you mean 'epochs'" in err
    assert "Traceback" not in err


def test_bad_values_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--model", "smallcnn", "--out", str(tmp_path / "x.safetensors")
    )
    assert code == 2 and "Did you mean 'small-cnn'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", "--lr", "-1", "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "'lr' parameter of TrainConfig" in err
    code, _, err = run(capsys, "evaluate", str(tmp_path / "missing.safetensors"))
    assert code == 2 and "does not exist" in err


def test_every_command_has_help(capsys):
    parser = build_parser()
    for argv in (["data", "info"], ["models"], ["train"], ["evaluate"], ["demo"]):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([*argv, "--help"])
        assert info.value.code == 0
        assert "--config" in capsys.readouterr().out


def test_demo_on_digits(capsys, tmp_path, monkeypatch):
    import dataclasses
    import importlib

    demo = importlib.import_module("saddlepoint.experiments.studies.demo")  # the module

    # The whole demo with its models as trained by `make demo`, but attacked on fewer images
    # and with Square inside the strongest evaluation at 500 queries instead of 5,000: the
    # demo's structure and findings are checked, not its last decimal.
    quick = dataclasses.replace(
        demo.PLANS["digits"],
        images=200,
        blackbox_images=100,
        queries=300,
        grid_images=200,
        defense_images=60,
        audit_images=60,
        strong_queries=500,
    )
    monkeypatch.setitem(demo.PLANS, "digits", quick)
    code, out, err = run(capsys, "demo", "--dataset", "digits", "--out", str(tmp_path))
    assert code == 0, err
    with RunLog(tmp_path) as log:
        sections = {s.key: s for s in log.sections()}
    expected = ["reference", "whitebox", "transfer", "blackbox", "grid", "defense", "audit"]
    assert list(sections) == expected
    reference = sections["reference"].table("models").records()[0]
    assert reference["test acc"] >= 0.95
    attacks = {r["attack"]: r for r in sections["whitebox"].table("attacks").records()}
    pgd = attacks["PGD-40 Linf 0.1"]
    assert pgd["robust acc"] <= attacks["FGSM Linf 0.1"]["robust acc"] <= pgd["clean acc"]
    assert pgd["Linf max"] <= 0.1 + 1e-6
    assert len(sections["grid"].table("grid").rows) == 3 * 8 * 2 * 2
    defense = {r["model"]: r for r in sections["defense"].table("defense").records()}
    assert defense["fast AT"]["PGD-40x2 Linf 0.1"] > defense["reference"]["PGD-40x2 Linf 0.1"]
    assert (tmp_path / "models" / "reference.safetensors").is_file()
    report = tmp_path / "report.html"
    assert str(report) in out and report.stat().st_size > 50_000
    assert "checks pass" in out
    # A second run reuses every finished section and model: nothing is recomputed.
    stamp = (tmp_path / "models" / "fast-at.safetensors").stat().st_mtime_ns
    code, out, err = run(capsys, "demo", "--dataset", "digits", "--out", str(tmp_path))
    assert code == 0, err
    with RunLog(tmp_path) as log:
        assert [s.seconds for s in log.sections()] == [s.seconds for s in sections.values()]
    assert (tmp_path / "models" / "fast-at.safetensors").stat().st_mtime_ns == stamp


def test_an_interrupted_train_command_resumes_to_the_same_weights(capsys, tmp_path, monkeypatch):
    import safetensors.torch

    from saddlepoint.train import trainer

    args = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "4", "--seed", "2"]
    whole, stopped = tmp_path / "whole.safetensors", tmp_path / "stopped.safetensors"
    assert run(capsys, *args, "--out", str(whole))[0] == 0
    one_epoch = trainer._run_epoch
    calls = []

    def dies_in_epoch_3(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return one_epoch(*a, **k)

    monkeypatch.setattr(trainer, "_run_epoch", dies_in_epoch_3)
    assert run(capsys, *args, "--out", str(stopped))[0] == 130  # Ctrl-C in epoch 3
    state = tmp_path / "stopped.safetensors.training.pt"
    assert state.is_file() and not stopped.exists()
    monkeypatch.setattr(trainer, "_run_epoch", one_epoch)
    code, out, err = main(["train", *args[1:], "--out", str(stopped)]), *capsys.readouterr()
    assert code == 0 and "resuming after epoch 2/4" in out + err
    a, b = safetensors.torch.load_file(whole), safetensors.torch.load_file(stopped)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert not state.exists()


def test_every_attack_keyword_is_an_option_generated_from_the_registry():
    """The attack options are the registry's keywords: none is hand-kept, so none is missing."""
    import argparse

    from saddlepoint.attacks import ATTACKS
    from saddlepoint.cli.attack import (
        NOT_ON_THE_COMMAND_LINE,
        add_attack_arguments,
        attack_kwargs,
        option_dest,
    )

    parser = argparse.ArgumentParser()
    add_attack_arguments(parser)
    dests = {action.dest for action in parser._actions}
    for name, entry in ATTACKS.items():
        for keyword in set(entry.arguments()) - NOT_ON_THE_COMMAND_LINE:
            assert option_dest(keyword) in dests, f"{name}: {keyword} has no option"
    args = parser.parse_args(
        ["--attack", "apgd", "--momentum", "0.5", "--attack-seed", "3", "--no-early-stop"]
    )
    assert attack_kwargs(args) == {"momentum": 0.5, "seed": 3, "early_stop": False}
