"""A user's own data: image folders and .npz files, their checks, and the CLI's --data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.cli.main import main
from saddlepoint.data import load_dataset
from saddlepoint.data.files import load_files
from saddlepoint.evaluate import evaluate_split


def _folder(root, mode="L", sizes=((6, 5),) * 4):
    """Two classes, 'b' and 'a' (so sorting matters), images of the given sizes."""
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        folder = root / ("b" if i % 2 else "a")
        folder.mkdir(parents=True, exist_ok=True)
        shape = (h, w) if mode == "L" else (h, w, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def test_image_folders_give_classes_by_folder_and_pixels_in_unit_range(tmp_path):
    data = load_files(_folder(tmp_path / "grey"))
    assert data.class_names == ("a", "b")
    assert data.test.images.shape == (4, 1, 5, 6)
    assert data.test.labels.tolist() == [0, 1, 0, 1]  # classes in turn
    first = np.asarray(Image.open(tmp_path / "grey" / "a" / "0.png"), dtype=np.float32) / 255
    assert torch.allclose(data.test.images[0, 0], torch.from_numpy(first))
    rgb = load_files(_folder(tmp_path / "rgb", "RGB"), size=8, limit=3)
    assert rgb.test.images.shape == (3, 3, 8, 8)
    assert float(rgb.test.images.min()) >= 0 and float(rgb.test.images.max()) <= 1
    with pytest.raises(ValueError, match=r"is 7x5 but .* is 6x5; give a size"):
        load_files(_folder(tmp_path / "mixed", sizes=((6, 5), (6, 5), (7, 5))))
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folders hold no"):
        load_files(tmp_path / "empty")
    broken = _folder(tmp_path / "broken")
    (broken / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png is not a readable image"):
        load_files(broken)


def test_npz_layouts_and_their_errors(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 1, 0])
    np.savez(tmp_path / "hwc.npz", images=x, labels=y)
    data = load_files(tmp_path / "hwc.npz")
    assert data.test.images.shape == (5, 3, 4, 4)
    assert torch.allclose(data.test.images[2, 1], torch.from_numpy(x[2, :, :, 1] / 255).float())
    np.savez(tmp_path / "xy.npz", x=x[..., 0] / 255.0, y=y)
    assert load_files(tmp_path / "xy.npz").test.images.shape == (5, 1, 4, 4)
    for name, arrays, message in (
        ("range.npz", {"images": x * 2.0, "labels": y}, r"values in \[0, 510\]"),
        ("keys.npz", {"pictures": x, "labels": y}, "It holds: pictures, labels"),
        ("count.npz", {"images": x, "labels": y[:3]}, "labels must be 5 whole numbers"),
        ("nan.npz", {"images": np.full((2, 4, 4), np.nan), "labels": y[:2]}, "NaN"),
        ("neg.npz", {"images": x, "labels": -y}, "at least 0"),
    ):
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=message):
            load_files(tmp_path / name)
    np.savez(tmp_path / "objects.npz", images=np.array([object()]), labels=y[:1])
    with pytest.raises(ValueError, match="store plain numeric arrays"):
        load_files(tmp_path / "objects.npz")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="must be a folder of class sub-folders"):
        load_files(tmp_path / "x.csv")


def test_cli_evaluates_and_attacks_a_users_npz_like_the_dataset_itself(tmp_path, capsys):
    checkpoint = tmp_path / "m.safetensors"
    assert main(["--quiet", "train", "--epochs", "2", "--out", str(checkpoint)]) == 0
    model, meta = load_checkpoint(checkpoint)
    test = load_dataset("digits", **meta["dataset"]["options"]).test
    np.savez(tmp_path / "mine.npz", images=test.images.numpy(), labels=test.labels.numpy())
    report = tmp_path / "report.json"
    argv = ["--quiet", "evaluate", str(checkpoint), "--data", str(tmp_path / "mine.npz")]
    assert main([*argv, "--json", str(report)]) == 0
    import json

    measured = json.loads(report.read_text())["accuracy"]
    assert measured == pytest.approx(evaluate_split(model, test, 10)["accuracy"])
    capsys.readouterr()
    argv = ["--quiet", "attack", str(checkpoint), "--attack", "fgsm", "--eps", "0.1"]
    assert main([*argv, "--data", str(tmp_path / "mine.npz"), "--limit", "50"]) == 0
    assert "robust" in capsys.readouterr().out
    np.savez(tmp_path / "big.npz", images=np.zeros((3, 1, 16, 16)), labels=np.zeros(3, int))
    assert main(["--quiet", "evaluate", str(checkpoint), "--data", str(tmp_path / "big.npz")]) == 2
    assert "takes inputs of shape (1, 8, 8)" in capsys.readouterr().err
    assert main([*argv, "--data", str(tmp_path / "big.npz"), "--data-option", "size=8"]) == 0


def test_a_limit_reads_only_the_first_images_taking_classes_in_turn(tmp_path):
    rng = np.random.default_rng(2)
    for name in ("cat", "dog", "eel"):
        (tmp_path / name).mkdir()
        for i in range(4):
            image = rng.integers(0, 256, (5, 5), dtype=np.uint8)
            Image.fromarray(image, "L").save(tmp_path / name / f"{i}.png")
    (tmp_path / "eel" / "9.png").write_bytes(b"broken, but past the limit")
    data = load_files(tmp_path, limit=5)
    assert data.test.labels.tolist() == [0, 1, 2, 0, 1]  # every class within the first five
    with pytest.raises(ValueError, match="9.png is not a readable image"):
        load_files(tmp_path)  # without the limit the broken file is reached


def test_npy_pairs_are_memory_mapped_and_checked(tmp_path):
    x = np.random.default_rng(3).integers(0, 256, (50, 6, 6), dtype=np.uint8)
    y = np.arange(50) % 4
    np.save(tmp_path / "images.npy", x)
    np.save(tmp_path / "labels.npy", y)
    data = load_files(tmp_path, limit=7)
    assert data.test.images.shape == (7, 1, 6, 6) and data.test.labels.tolist() == [
        0,
        1,
        2,
        3,
        0,
        1,
        2,
    ]
    assert load_files(tmp_path / "images.npy").test.images.shape == (50, 1, 6, 6)
    np.save(tmp_path / "labels.npy", y[:10])
    with pytest.raises(ValueError, match="holds 50 images but .*labels.npy 10 labels"):
        load_files(tmp_path)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(ValueError, match="has no labels.npy beside it"):
        load_files(tmp_path)
