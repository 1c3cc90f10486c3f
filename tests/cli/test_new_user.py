"""What a new user meets first: silent wrong setups turned into errors or warnings, and the
small inconsistencies a torchattacks or Foolbox user trips over."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from saddlepoint.cli.main import main

FACTORY = """
from torch import nn

def make():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
"""


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A user's factory file and weights trained on digits in [0, 1] (no normalization)."""
    from saddlepoint.data import load_dataset

    folder = tmp_path_factory.mktemp("new-user")
    (folder / "net.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    torch.manual_seed(0)
    model = namespace["make"]()
    train = load_dataset("digits").split("train")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = nn.functional.cross_entropy(model(train.images), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), folder / "w.pt")
    return folder


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["--quiet", *[str(a) for a in argv]])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_factory_without_weights_is_refused_unless_random_weights_is_said(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--dataset", "digits"]
    code, _, err = run(capsys, "evaluate", *model)
    assert code == 2 and "without --weights" in err and "--random-weights" in err
    code, out, err = run(capsys, "evaluate", *model, "--random-weights", "--limit", "50")
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", *model, "--weights", own / "w.pt", "--random-weights")
    assert code == 2 and "--random-weights goes with" in err


def test_a_wrong_normalization_is_warned_about(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    code, out, err = run(capsys, "evaluate", *model)
    assert code == 0 and "warning" not in err  # trained on [0, 1]: no warning
    code, out, err = run(capsys, "evaluate", *model, "--input-normalization", "mean=0.5,std=0.05")
    assert code == 0 and "warning: clean accuracy" in err and "normalization" in err


def test_a_checkpoint_far_below_its_recorded_accuracy_is_warned_about():
    from saddlepoint.cli.common import clean_accuracy_warning

    meta = {"metrics": {"test": {"accuracy": 0.98}}}
    assert clean_accuracy_warning(0.97, meta) is None
    assert "below the 98.00% its checkpoint recorded" in (clean_accuracy_warning(0.80, meta) or "")
    assert clean_accuracy_warning(0.80, meta, same_data=False) is None  # other data: no record
    assert "below 50%" in (clean_accuracy_warning(0.3, {}) or "")


@pytest.mark.parametrize("eps", ["8", "2", "1.5"])
def test_an_eps_wider_than_the_input_range_is_refused(own, eps, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    code, _, err = run(capsys, "attack", *model, "--attack", "pgd", "--eps", eps)
    assert code == 2 and "wider than the [0, 1] pixel range" in err and "8/255" in err
    code, _, err = run(capsys, "audit", *model, "--eps", eps)
    assert code == 2 and "wider than the [0, 1] pixel range" in err


def test_a_left_out_eps_is_the_datasets_usual_radius_and_said(own, capsys, tmp_path):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt"]
    argv = ["attack", *model, "--dataset", "digits", "--attack", "fgsm", "--limit", "20"]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr()
    assert "eps 0.1: the usual Linf radius for digits" in out.err
    assert "eps=0.1" in out.out  # the attack that ran
    from saddlepoint.data import load_dataset

    test = load_dataset("digits").split("test").head(20)
    import numpy as np

    np.savez(tmp_path / "mine.npz", images=test.images.numpy(), labels=test.labels.numpy())
    code, _, err = run(
        capsys, "attack", *model, "--data", tmp_path / "mine.npz", "--attack", "fgsm"
    )
    assert code == 2 and "no default radius" in err and "give --eps" in err


def test_attack_names_are_suggested_whatever_their_case(capsys, own):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    code, _, err = run(capsys, "attack", *model, "--attack", "PGD")
    assert code == 2 and "Did you mean 'pgd'?" in err


def test_l1_attacks_run_from_the_command_line(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    code, out, err = run(
        capsys,
        "attack",
        *model,
        "--attack",
        "apgd",
        "--norm",
        "l1",
        "--eps",
        "2",
        "--steps",
        "5",
        "--limit",
        "20",
    )
    assert code == 0, err


def test_device_help_names_auto(capsys):
    for command in ("attack", "evaluate", "audit", "benchmark"):
        assert main([command, "--help"]) == 0
        assert "cpu, cuda, cuda:N or auto" in capsys.readouterr().out.replace("\n", " ").replace(
            "  ", " "
        )


def test_evaluate_takes_a_limit(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    code, out, err = run(capsys, "evaluate", *model, "--limit", "50")
    assert code == 0, err
    assert out.splitlines()[2].split()[2] == "50"


def test_the_torchattacks_habit_gets_a_clear_error():
    from saddlepoint.attacks import PGD, Square

    with pytest.raises(TypeError, match="keyword arguments only, and no model"):
        PGD(nn.Linear(2, 2), eps=0.3)
    with pytest.raises(TypeError, match="keyword arguments only"):
        Square(nn.Linear(2, 2))


def test_a_dataset_prints_in_one_line_and_audit_is_exported():
    from saddlepoint.data import load_dataset
    from saddlepoint.evaluate import AuditReport, audit

    data = load_dataset("digits")
    assert len(repr(data)) < 150 and "digits" in repr(data) and "test 359" in repr(data)
    assert len(repr(data.test)) < 80
    assert callable(audit) and AuditReport.__name__ == "AuditReport"


def test_an_ensemble_reports_its_robust_accuracy_after_each_member(caplog):
    import logging

    from saddlepoint.attacks import build_attack
    from saddlepoint.data import load_dataset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    test = load_dataset("digits").split("test").head(40)
    attack = build_attack("apgd-ensemble", eps=0.05, steps=5)
    with caplog.at_level(logging.INFO, logger="saddlepoint"):
        result = attack(model, test.images, test.labels)
    lines = [r.getMessage() for r in caplog.records if "robust accuracy" in r.getMessage()]
    assert len(lines) == len(attack.attacks)
    assert [line.split(" after ")[1].split(" (")[0] for line in lines] == attack.labels()
    last = float(lines[-1].split("robust accuracy ")[1].split("%")[0])
    assert last == pytest.approx(100 * result.metrics()["robust_accuracy"], abs=0.01)


def test_attack_prints_per_member_progress_and_quiet_silences_it(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    argv = [
        "attack",
        *model,
        "--attack",
        "apgd-ensemble",
        "--eps",
        "0.05",
        "--steps",
        "3",
        "--limit",
        "30",
    ]
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "robust accuracy" in err and "after apgd-ce" in err and "after apgd-dlr" in err
    assert main(["--quiet", *[str(a) for a in argv]]) == 0
    assert "robust accuracy" not in capsys.readouterr().err


def test_a_long_run_states_its_cost_before_it_starts(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    argv = ["attack", *model, "--attack", "apgd-ensemble", "--eps", "0.05", "--steps", "3"]
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    estimate = err.index("apgd-ensemble on 359 images: about")
    assert "a probe on 8 images took" in err
    assert estimate < err.index("robust accuracy")  # said before the run's own progress
    assert err.count("after apgd-ce") == 1  # the probe runs silently


def test_the_estimate_scales_the_probe_to_every_image():
    from saddlepoint.evaluate.cost import estimate_cost

    calls = []

    def attack(model, x, y):
        calls.append(len(y))

    estimate = estimate_cost(attack, None, torch.zeros(100, 1, 2, 2), torch.zeros(100), factor=2)
    assert calls == [8] and estimate.images == 100 and estimate.probe_images == 8
    assert estimate.seconds == pytest.approx(estimate.probe_seconds / 8 * 100 * 2)
    assert "100 images: about" in estimate.describe("x")


def test_the_command_lines_early_stop_default_is_said(own, capsys):
    model = ["--model", f"{own / 'net.py'}:make", "--weights", own / "w.pt", "--dataset", "digits"]
    argv = ["attack", *model, "--attack", "pgd", "--eps", "0.05", "--steps", "3", "--limit", "20"]
    assert main([str(a) for a in argv]) == 0
    assert (
        "early stop on (this command's default; the Python API's is off)" in capsys.readouterr().err
    )
    assert main([str(a) for a in [*argv, "--no-early-stop"]]) == 0
    assert "early stop on" not in capsys.readouterr().err


def test_training_bars_stay_off_a_pipe(tmp_path, capsys):
    argv = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "m.safetensors"),
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "img/s" not in err  # stderr is not a terminal here: no bar redrawn into the log
