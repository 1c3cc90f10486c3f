"""A user's own model: factories, weights files, exported programs and the input adapter."""

from __future__ import annotations

import io
import os

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from saddlepoint.checkpoint import load_checkpoint, save_checkpoint
from saddlepoint.models import build_model
from saddlepoint.models.external import (
    InputAdapter,
    build_from_factory,
    external_model,
    read_state_dict,
    resolve_factory,
)

FACTORY = """
from torch import nn

def make(hidden=16, classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes))

NOT_CALLABLE = 3
"""


@pytest.fixture()
def factory_file(tmp_path):
    path = tmp_path / "usernet.py"
    path.write_text(FACTORY)
    return path


def _exported_bytes(model: nn.Module, shape=(1, 8, 8)) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        model.eval(), (torch.rand(4, *shape),), dynamic_shapes={"input": {0: batch}}
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def test_a_factory_is_found_by_file_path_and_by_module(factory_file):
    model = build_from_factory(f"{factory_file}:make", {"hidden": 7})
    assert model[1].out_features == 7
    assert resolve_factory("saddlepoint.models.cnn:MLP").__name__ == "MLP"


@pytest.mark.parametrize(
    ("reference", "phrase"),
    [
        ("no_colon_here", "name a factory as package.module:function"),
        ("{file}:missing", "has no 'missing'. Callables there: make"),
        ("{file}:NOT_CALLABLE", "is not callable"),
        ("{dir}/absent.py:make", "does not exist"),
        ("surely_not_a_module_xyz:make", "no module 'surely_not_a_module_xyz'"),
    ],
)
def test_bad_factory_references_say_what_is_wrong(factory_file, reference, phrase):
    text = reference.format(file=factory_file, dir=factory_file.parent)
    with pytest.raises((ValueError, FileNotFoundError), match=None) as caught:
        resolve_factory(text)
    assert phrase in str(caught.value)


def test_a_factory_must_return_a_module(tmp_path):
    (tmp_path / "bad.py").write_text("def make():\n    return 3\n")
    with pytest.raises(TypeError, match="returned a int, not a torch.nn.Module"):
        build_from_factory(f"{tmp_path / 'bad.py'}:make")


def test_state_dicts_load_from_pt_safetensors_and_a_wrapper(factory_file, tmp_path):
    model = build_from_factory(f"{factory_file}:make")
    state = model.state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "wrapped.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    for name in ("plain.pt", "wrapped.pth", "w.safetensors"):
        loaded = read_state_dict(tmp_path / name)
        assert set(loaded) == set(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)


class _Payload:
    """Unpickling this would run code (create the folder ``marker``); a weights file holding
    it must be refused without running it."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_weights_that_need_full_unpickling_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "ran"
    with (tmp_path / "evil.pt").open("wb") as handle:
        torch.save({"weight": torch.zeros(1), "x": _Payload(marker)}, handle)
    torch.save(nn.Linear(2, 2), tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="holds a (posix.|os.)?mkdir object"):
        read_state_dict(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="holds a torch.nn.modules.linear.Linear object"):
        read_state_dict(tmp_path / "whole.pt")
    assert not marker.exists()
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated, corrupt or another format"):
        read_state_dict(tmp_path / "cut.pt")


def test_mismatched_weights_list_missing_unexpected_and_reshaped_keys(factory_file, tmp_path):
    state = build_from_factory(f"{factory_file}:make", {"hidden": 8}).state_dict()
    state["extra.weight"] = torch.zeros(2)
    del state["3.bias"]
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ValueError) as caught:
        external_model(f"{factory_file}:make", in_shape=(1, 8, 8), weights=tmp_path / "w.pt")
    text = str(caught.value)
    assert "missing (1): 3.bias" in text and "unexpected (1): extra.weight" in text
    assert "1.weight (8, 64) vs (16, 64)" in text


def test_the_adapter_maps_pixels_to_the_models_range_then_normalizes():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1)

    adapter = InputAdapter(Spy(), bounds=(0, 255), mean=[128.0], std=[64.0])
    adapter(torch.tensor([[[[0.0, 1.0]]]]))
    assert torch.allclose(seen[0], torch.tensor([[[[-2.0, (255 - 128) / 64]]]]))
    assert list(adapter.state_dict()) == []  # its constants live in the metadata


def test_normalizing_in_the_adapter_changes_no_prediction():
    torch.manual_seed(1)
    inside = build_model(
        "mnist-cnn", in_shape=(3, 12, 12), num_classes=5, mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]
    ).eval()
    bare = build_model("mnist-cnn", in_shape=(3, 12, 12), num_classes=5).eval()
    bare.load_state_dict({k: v for k, v in inside.state_dict().items() if "normalize" not in k})
    adapted = InputAdapter(bare, mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])
    x = torch.rand(64, 3, 12, 12)
    assert torch.equal(adapted(x).argmax(1), inside(x).argmax(1))
    assert torch.allclose(adapted(x), inside(x), atol=1e-5)


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"bounds": (1, 0)}, "LOW < HIGH"),
        ({"mean": [0.5]}, "needs both mean and std"),
        ({"mean": [0.5, 0.5], "std": [0.2]}, "one std per mean"),
        ({"mean": [0.5], "std": [0.0]}, "must be positive"),
    ],
)
def test_impossible_adapters_are_refused(factory_file, options, phrase):
    with pytest.raises(ValueError, match=phrase):
        external_model(f"{factory_file}:make", in_shape=(1, 8, 8), **options)


def test_an_imported_model_round_trips_through_a_checkpoint(factory_file, tmp_path):
    torch.manual_seed(0)
    state = build_from_factory(f"{factory_file}:make", {"hidden": 12}).state_dict()
    torch.save(state, tmp_path / "w.pt")
    model = external_model(
        f"{factory_file}:make",
        in_shape=(1, 8, 8),
        weights=tmp_path / "w.pt",
        kwargs={"hidden": 12},
        bounds=(-1, 1),
    )
    assert model.spec["num_classes"] == 10 and model.spec["name"] == "external"
    save_checkpoint(tmp_path / "m.safetensors", model, {"dataset": {"name": "digits"}})
    with pytest.raises(ValueError, match="--trust-factory"):
        load_checkpoint(tmp_path / "m.safetensors")  # the file alone imports nothing
    again, meta = load_checkpoint(tmp_path / "m.safetensors", trust_factory=[str(factory_file)])
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(again(x), model(x))
    assert meta["model"]["input"] == {"bounds": [-1.0, 1.0]}


def test_an_exported_program_runs_and_round_trips(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    (tmp_path / "m.pt2").write_bytes(_exported_bytes(net))
    model = external_model(str(tmp_path / "m.pt2"), in_shape=(1, 8, 8), mean=[0.5], std=[0.25])
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    assert torch.allclose(model(x), net((x - 0.5) / 0.25), atol=1e-6)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    assert grad.abs().sum() > 0  # attacks get input gradients through the program
    save_checkpoint(tmp_path / "e.safetensors", model)
    again, _ = load_checkpoint(tmp_path / "e.safetensors")
    assert torch.allclose(again(x), model(x))


def test_a_program_exported_for_one_batch_size_is_refused_clearly(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    program = torch.export.export(net, (torch.rand(1, 1, 8, 8),))
    torch.export.save(program, tmp_path / "static.pt2")
    with pytest.raises(ValueError, match="export with a dynamic batch"):
        external_model(str(tmp_path / "static.pt2"), in_shape=(1, 8, 8))
