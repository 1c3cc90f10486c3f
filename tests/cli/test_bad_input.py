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
    (["attack", "{ckpt}", "--attack", "fgsm", "--limit", "-3"], "argument --limit"),
    (["attack", "{ckpt}", "--attack", "fgsm", "--limit", "0"], "at least 1"),
    (["attack", "{ckpt}", "--attack", "pgd", "--step", "0"], "'step' parameter of PGD"),
    (["audit", "{ckpt}", "--limit", "-1", "--json", "{tmp}/a.json"], "argument --limit"),
    (
        ["transfer", "--target", "{ckpt}", "--surrogate", "{ckpt}", "--limit", "-5"],
        "argument --limit",
    ),
    (["attack", "{ckpt}", "--attack", "fgsm", "--device", "gpu7"], "'device' parameter must be"),
    (["evaluate", "{ckpt}", "--device", "cuda:x"], "'device' parameter must be"),
    (["evaluate", "{tmp}"], "is a folder; give the .safetensors file"),
    (["report", "{tmp}/broken"], "is not a readable run log"),
    (["sweep", "status", "{tmp}/exp.yaml", "--out", "{tmp}/broken"], "not a readable results"),
    (["evaluate", "{tmp}/mismatch.safetensors"], "do not match the architecture"),
    (["sweep", "export", "{tmp}/exp.yaml", "--to", "{tmp}/x.xlsx"], "end in .csv or .parquet"),
    (["sweep", "top", "{tmp}/exp.yaml", "--k", "-2"], "argument --k: must be a whole number"),
    (["sweep", "run", "{tmp}/exp.yaml", "--workers", "0"], "argument --workers"),
    (["models", "--num-classes", "0"], "argument --num-classes"),
    (["attack", "{ckpt}", "--attack", "fgsm", "--images", "-1"], "argument --images"),
    (["sweep", "run", "{tmp}/dup.yaml"], "the key 'attack' is given twice"),
    (["evaluate", "{ckpt}", "--dataset", "mnist"], "takes inputs of shape (1, 8, 8)"),
    (["sweep", "run", "{tmp}/huge.yaml"], "expands to 2,000,000 configurations"),
    (["evaluate", "{tmp}/foreign.safetensors"], "has format None, not 'saddlepoint-checkpoint'"),
    (["data", "info", "fashion-mnist", "--data-root", "{tmp}/data"], "is truncated or corrupt"),
    (["data", "info", "cifar10", "--data-root", "{tmp}/data"], "was not loaded: Refusing"),
]


@pytest.mark.parametrize(("argv", "phrase"), CASES)
def test_bad_command_lines_are_one_line_errors(capsys, checkpoint, tmp_path, argv, phrase):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.sqlite").write_bytes(b"this is not a database" * 100)
    (broken / "results.sqlite").write_bytes(b"this is not a database" * 100)
    spec = {"checkpoints": [str(checkpoint)], "attack": "fgsm", "grid": {"eps": [0.1]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"name": "exp", **spec}))
    huge = {**spec, "attack": "pgd", "grid": {"eps": ["1..2000 /10000"], "steps": ["1..1000"]}}
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump({"name": "huge", **huge}))
    (tmp_path / "dup.yaml").write_text(
        f"checkpoints: [{checkpoint}]\nattack: pgd\nattack: fgsm\ngrid: {{eps: [0.1]}}\n"
    )
    _mismatched_checkpoint(checkpoint, tmp_path / "mismatch.safetensors")
    _broken_data_files(tmp_path / "data")
    foreign = {"saddlepoint": json.dumps({"dataset": {"name": "digits"}})}
    save_file(load_file(str(checkpoint)), str(tmp_path / "foreign.safetensors"), metadata=foreign)
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


def _broken_data_files(root):
    """A Fashion-MNIST release whose training images are cut short, and CIFAR-10 batches of
    which one pickles a callable."""
    import gzip
    import pickle

    import numpy as np

    from saddlepoint.data.cifar import BATCH_DIR
    from saddlepoint.data.idx import write_idx
    from tests.data.formats import write_cifar_batches
    from tests.data.test_cifar import Evil

    fashion = root / "fashion-mnist"
    fashion.mkdir(parents=True)
    for stem, count in (("train", 20), ("t10k", 10)):
        write_idx(fashion / f"{stem}-images-idx3-ubyte.gz", np.zeros((count, 28, 28), np.uint8))
        write_idx(fashion / f"{stem}-labels-idx1-ubyte.gz", np.zeros(count, np.uint8))
    full = (fashion / "train-images-idx3-ubyte.gz").read_bytes()
    (fashion / "train-images-idx3-ubyte.gz").write_bytes(full[: len(full) // 2])
    assert gzip.decompress(full)  # the cut is what breaks it
    folder = root / "cifar10" / BATCH_DIR
    write_cifar_batches(folder, per_batch=2)
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": Evil()}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))


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


def test_quiet_and_debug_are_accepted_after_the_command(capsys):
    assert main(["models", "--quiet"]) == 0
    assert main(["models", "--num-classes", "3", "--debug"]) == 0


def test_api_refuses_plain_functions_and_out_of_range_labels_and_takes_float64():
    x = torch.rand(3, 1, 6, 6)
    with pytest.raises(TypeError, match="'model' must be a torch.nn.Module"):
        build_attack("fgsm", eps=0.1)(lambda t: t.flatten(1), x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'y' must hold class indices in \[0, 3\]"):
        build_attack("fgsm", eps=0.1)(tiny_convnet(), x, torch.tensor([0, 1, 7]))
    result = build_attack("fgsm", eps=0.1)(tiny_convnet(), x.double(), torch.tensor([0, 1, 2]))
    assert result.adversarial.dtype == torch.float32


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="empty batch"):
        build_attack("pgd", eps=0.1)(
            tiny_convnet(), torch.rand(0, 1, 6, 6), torch.zeros(0, dtype=torch.long)
        )


def test_config_files_carry_switches_and_lists_beside_a_positional(capsys, checkpoint, tmp_path):
    config = tmp_path / "attack.yaml"
    config.write_text("attack: pgd\neps: 0.1\nsteps: 3\nrandom-start: false\nearly_stop: true\n")
    code = main(["--quiet", "attack", str(checkpoint), "--config", str(config), "--limit", "20"])
    assert code == 0, capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("random-start: maybe\n")
    code = main(["--quiet", "attack", str(checkpoint), "--config", str(bad)])
    assert code == 2 and "'random-start'" in capsys.readouterr().err and "true or false"
