import json

import pytest
from safetensors.torch import load_file

from saddlepoint.cli.main import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "digits.safetensors"
    assert (
        main(["--quiet", "train", "--dataset", "digits", "--epochs", "6", "--out", str(path)]) == 0
    )
    return path


def test_attack_prints_metrics_saves_examples_and_images(checkpoint, tmp_path, capsys):
    out = tmp_path / "adv"
    code = main(
        [
            "--quiet",
            "attack",
            str(checkpoint),
            "--attack",
            "pgd",
            "--eps",
            "25/255",
            "--step",
            "5/255",
            "--steps",
            "5",
            "--no-random-start",
            "--loss",
            "mse",
            "--limit",
            "50",
            "--save",
            str(out),
            "--images",
            "4",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "robust acc" in text and "step=0.0196" in text.replace("0.0196078", "0.0196")
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["loss"] == "mse" and record["config"]["random_start"] is False
    assert record["metrics"]["n"] == 50
    # the cost per image, counted on the model: early stop ends some images before 5 steps
    assert "fwd/img" in text and "bwd/img" in text
    assert 0 < record["metrics"]["backward_passes"] <= 5
    assert record["metrics"]["forward_passes"] >= record["metrics"]["backward_passes"]
    tensors = load_file(str(out / "adversarial.safetensors"))
    assert tensors["adversarial"].shape == (50, 1, 8, 8)
    assert float((tensors["adversarial"] - tensors["inputs"]).abs().max()) <= 25 / 255 + 1e-6
    assert (out / "digits-pgd.png").read_bytes()[:4] == b"\x89PNG"


def test_minimal_attacks_from_the_cli(checkpoint, capsys):
    for name in ("deepfool", "cw"):
        extra = ["--search-steps", "2", "--steps", "20"] if name == "cw" else []
        assert (
            main(["--quiet", "attack", str(checkpoint), "--attack", name, "--limit", "20", *extra])
            == 0
        )
    assert "rho_adv" in capsys.readouterr().out


def test_the_strongest_evaluation_prints_robust_accuracy_after_each_attack(checkpoint, capsys):
    args = ["--quiet", "attack", str(checkpoint), "--attack", "strongest", "--eps", "0.1"]
    assert main([*args, "--steps", "10", "--queries", "50", "--limit", "30"]) == 0
    line = next(
        row
        for row in capsys.readouterr().out.splitlines()
        if row.startswith("robust accuracy after")
    )
    labels = [part.split()[0] for part in line.split(": ", 1)[1].split(", ")]
    assert labels == ["apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square"]


def test_options_that_do_not_apply_are_errors(checkpoint, capsys):
    code = main(["--quiet", "attack", str(checkpoint), "--attack", "deepfool", "--eps", "0.1"])
    err = capsys.readouterr().err
    assert code == 2 and "'eps'" in err and "deepfool" in err
    code = main(["--quiet", "attack", str(checkpoint), "--attack", "fgsn"])
    assert code == 2 and "Did you mean 'fgsm'" in capsys.readouterr().err
