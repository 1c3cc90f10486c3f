import numpy as np
import pytest
import torch

from saddlepoint.data import DatasetNotFoundError
from saddlepoint.data.idx import parse_idx, read_idx, write_idx
from saddlepoint.data.mnist import load_fashion_mnist, load_mnist
from tests.data.formats import write_idx_release


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_roundtrip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_magic(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 1])
    assert raw[4:8] == (3).to_bytes(4, "big")


def test_truncated_idx_is_rejected(tmp_path):
    write_idx(tmp_path / "x", np.zeros((5, 28, 28), dtype=np.uint8))
    data = (tmp_path / "x").read_bytes()[:-10]
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(data, "x")


def test_not_idx_is_rejected():
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"hello world", "x")


def test_mnist_from_idx_folder(tmp_path):
    arrays = write_idx_release(tmp_path / "mnist", n_train=60, n_test=20)
    data = load_mnist(root=tmp_path, val_size=10, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 20)
    assert data.shape == (1, 28, 28)
    assert data.train.images.dtype == torch.float32
    assert float(data.train.images.min()) >= 0.0 and float(data.train.images.max()) <= 1.0
    # The official test split is kept in order and scaled by 1/255 exactly.
    expected = torch.from_numpy(arrays["test_images"]).float().unsqueeze(1) / 255
    assert torch.equal(data.test.images, expected)
    # Train + val together are exactly the official training set.
    merged = torch.cat([data.train.labels, data.val.labels]).sort().values
    assert torch.equal(merged, torch.from_numpy(arrays["train_labels"]).long().sort().values)


def test_split_depends_only_on_seed(tmp_path):
    write_idx_release(tmp_path / "mnist")
    a = load_mnist(root=tmp_path, val_size=10, seed=1)
    b = load_mnist(root=tmp_path, val_size=10, seed=1)
    c = load_mnist(root=tmp_path, val_size=10, seed=2)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)


def test_plain_idx_files_also_work(tmp_path):
    write_idx_release(tmp_path / "fashion-mnist", gz=False)
    data = load_fashion_mnist(root=tmp_path, val_size=10, system_dir=tmp_path / "absent")
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10


def test_fashion_from_system_folder(tmp_path):
    write_idx_release(tmp_path / "system")
    data = load_fashion_mnist(root=tmp_path / "empty", val_size=10, system_dir=tmp_path / "system")
    assert data.source == str(tmp_path / "system")


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(root=tmp_path, system_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "fashion-mnist") in message
    assert str(tmp_path / "nowhere") in message
    assert "download" in message


def test_failed_download_is_reported_and_leaves_nothing(tmp_path, server):
    # A mirror that serves nothing: every file 404s.
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        load_fashion_mnist(
            root=tmp_path,
            system_dir=tmp_path / "nowhere",
            download=True,
            mirrors=(server.base + "/missing/",),
        )
    assert not any(p.is_file() for p in (tmp_path / "fashion-mnist").glob("*"))
