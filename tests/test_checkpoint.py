import json

import pytest
import torch
from safetensors.torch import save_file

from saddlepoint.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from saddlepoint.models import build_model


def test_roundtrip_rebuilds_the_model_from_metadata(tmp_path):
    torch.manual_seed(0)
    model = build_model("grid-cnn", in_shape=(1, 16, 16), num_classes=10, mean=[0.3], std=[0.3])
    model.train()
    model(torch.rand(8, 1, 16, 16))  # move batch-norm running statistics off their defaults
    model.eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"dataset": {"name": "digits"}})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(model(x), loaded(x))
    assert meta["dataset"]["name"] == "digits"
    assert meta["model"]["name"] == "grid-cnn"
    assert not loaded.training
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["model"] == meta["model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_file_is_plain_safetensors_not_pickle(tmp_path):
    model = build_model("mlp", in_shape=(1, 4, 4), num_classes=3)
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    assert "saddlepoint" in header["__metadata__"]
    assert read_metadata(path)["format"] == "saddlepoint-checkpoint"


def test_foreign_or_missing_files_are_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a saddlepoint checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_models_without_spec_are_refused(tmp_path):
    with pytest.raises(ValueError, match="build_model"):
        save_checkpoint(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))
