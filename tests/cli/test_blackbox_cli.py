import json

import pytest

from saddlepoint.cli.main import main


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    paths = {}
    for name, model, seed in (("target", "cnn", 0), ("surrogate", "mlp", 1), ("other", "cnn", 2)):
        path = folder / f"{name}.safetensors"
        argv = [
            "--quiet",
            "train",
            "--model",
            model,
            "--epochs",
            "5",
            "--seed",
            str(seed),
            "--out",
            str(path),
        ]
        assert main(argv) == 0
        paths[name] = path
    return paths


def test_black_box_attacks_from_the_cli(checkpoints, capsys):
    target = str(checkpoints["target"])
    for argv in (
        ["--attack", "square", "--eps", "0.2", "--queries", "50"],
        [
            "--attack",
            "random-search",
            "--eps",
            "0.2",
            "--queries",
            "50",
            "--option",
            "on_bound=project",
        ],
        ["--attack", "one-pixel", "--popsize", "10", "--queries", "51"],
    ):
        assert main(["--quiet", "attack", target, "--limit", "20", *argv]) == 0
    sweep = [
        "--attack",
        "pixel-sweep",
        "--images",
        "3",
        "--save",
        str(checkpoints["target"].parent / "sweep"),
    ]
    assert main(["--quiet", "attack", target, "--limit", "20", *sweep]) == 0
    out = capsys.readouterr().out
    assert out.count("robust acc") == 4
    assert (checkpoints["target"].parent / "sweep" / "target-pixel-sweep-flips.png").is_file()


def test_transfer_command(checkpoints, capsys, tmp_path):
    code = main(
        [
            "--quiet",
            "transfer",
            "--surrogate",
            str(checkpoints["surrogate"]),
            "--surrogate",
            str(checkpoints["other"]),
            "--target",
            str(checkpoints["target"]),
            "--attack",
            "pgd",
            "--eps",
            "0.2",
            "--steps",
            "5",
            "--json",
            str(tmp_path / "t.json"),
        ]
    )
    assert code == 0
    assert "transfer rate" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "t.json").read_text())["metrics"]
    assert metrics["target_accuracy"] < metrics["target_clean_accuracy"]
    assert metrics["surrogate_accuracy"] < metrics["target_accuracy"]


def test_gan_attack_command_runs_the_generative_study(capsys, tmp_path):
    code = main(
        [
            "--quiet",
            "gan-attack",
            "--dataset",
            "digits",
            "--t",
            "0.05",
            "0.2",
            "--mode",
            "both",
            "--classifier",
            "cnn",
            "--classifier-epochs",
            "3",
            "--attacker-epochs",
            "2",
            "--width",
            "8",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 2 * 2 * 2  # modes x intensities x epochs
    assert {r["mode"] for r in rows} == {"consecutive", "alternating"}
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "report.html").is_file()
    figures = {p.name for p in tmp_path.rglob("*.png")}  # the generative study's figures
    assert {"generative-consecutive-c1.png", "generative-attacks-per-t.png"} <= figures
    strong = [r for r in rows if r["t"] == 0.2 and r["mode"] == "consecutive"][-1]
    assert strong["c1_attacked_accuracy"] < strong["c1_clean_accuracy"]
