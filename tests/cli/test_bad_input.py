"""Bad input gets a one-line error naming the option, never a traceback or a silent result.
Each row: the command line, the exit code, and a phrase the message must contain."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from saddlepoint.attacks import build_attack
from saddlepoint.cli.main import main
from tests.attacks.models import tiny_convnet


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    argv = ["--quiet", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "1"]
    assert main([*argv, "--out", str(path)]) == 0
    return path


CASES = [
    (["attack", "{ckpt}", "--attack", "fgsm", "--limit", "-3"], "'limit' option"),
    (["attack", "{ckpt}", "--attack", "fgsm", "--limit", "0"], "at least 1"),
    (["attack", "{ckpt}", "--attack", "pgd", "--step", "0"], "'step' parameter of PGD"),
    (["audit", "{ckpt}", "--limit", "-1", "--json", "{tmp}/a.json"], "'limit' option"),
    (
        ["transfer", "--target", "{ckpt}", "--surrogate", "{ckpt}", "--limit", "-5"],
        "'limit' option",
    ),
    (["attack", "{ckpt}", "--attack", "fgsm", "--device", "gpu7"], "'device' parameter must be"),
    (["evaluate", "{ckpt}", "--device", "cuda:x"], "'device' parameter must be"),
    (["evaluate", "{tmp}"], "is a folder; give the .safetensors file"),
    (["report", "{tmp}/broken"], "is not a readable run log"),
    (["sweep", "status", "{tmp}/exp.yaml", "--out", "{tmp}/broken"], "not a readable results"),
    (["evaluate", "{tmp}/mismatch.safetensors"], "do not match the architecture"),
]


@pytest.mark.parametrize(("argv", "phrase"), CASES)
def test_bad_command_lines_are_one_line_errors(capsys, checkpoint, tmp_path, argv, phrase):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.sqlite").write_bytes(b"this is not a database" * 100)
    (broken / "results.sqlite").write_bytes(b"this is not a database" * 100)
    spec = {"checkpoints": [str(checkpoint)], "attack": "fgsm", "grid": {"eps": [0.1]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"name": "exp", **spec}))
    _mismatched_checkpoint(checkpoint, tmp_path / "mismatch.safetensors")
    filled = [a.format(ckpt=checkpoint, tmp=tmp_path) for a in argv]
    code = main(["--quiet", *filled])
    err = capsys.readouterr().err
    assert code == 2, err
    assert phrase in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_nan_inputs_are_refused_not_counted_as_fooled():
    x = torch.rand(4, 1, 6, 6)
    x[2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite values in 1 of 4"):
        build_attack("fgsm", eps=0.1)(tiny_convnet(), x, torch.zeros(4, dtype=torch.long))


def test_a_zero_step_is_refused():
    with pytest.raises(ValueError, match="zero step never moves"):
        build_attack("pgd", eps=0.1, step=0)


def _mismatched_checkpoint(source, target):
    """A copy of ``source`` whose metadata claims another width: the weights no longer fit."""
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as handle:
        header = dict(handle.metadata())
    key = "saddlepoint"  # the header entry save_checkpoint writes
    meta = json.loads(header[key])
    meta["model"]["kwargs"]["hidden"] = [7]
    header[key] = json.dumps(meta)
    save_file(load_file(str(source)), str(target), metadata=header)
