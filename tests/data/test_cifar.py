import hashlib
import pickle

import numpy as np
import pytest
import torch

from saddlepoint.data import DatasetNotFoundError
from saddlepoint.data.cifar import BATCH_DIR, load_cifar10
from tests.data.formats import cifar_tarball, write_cifar_batches


def test_loads_real_batch_format(tmp_path):
    batches = write_cifar_batches(tmp_path / "cifar10" / BATCH_DIR, per_batch=8)
    data = load_cifar10(root=tmp_path, val_size=4)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 8)
    assert data.shape == (3, 32, 32)
    assert data.class_names[0] == "airplane"
    # The test batch is kept in order; rows are CHW: the first 1024 bytes are the red plane.
    raw = batches["test_batch"][b"data"]
    red = torch.from_numpy(raw[0, :1024].reshape(32, 32)).float() / 255
    green_pixel = raw[0, 1024] / 255
    assert torch.equal(data.test.images[0, 0], red)
    assert data.test.images[0, 1, 0, 0].item() == pytest.approx(green_pixel)
    assert data.test.labels.tolist() == batches["test_batch"][b"labels"]


def test_missing_cifar_explains(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download"):
        load_cifar10(root=tmp_path)


def test_download_and_extract(tmp_path, server):
    write_cifar_batches(tmp_path / "src", per_batch=4)
    archive = cifar_tarball(tmp_path / "src")
    url = server.serve("/cifar-10-python.tar.gz", archive)
    root = tmp_path / "root"
    data = load_cifar10(
        root=root, download=True, url=url, sha256=hashlib.sha256(archive).hexdigest(), val_size=2
    )
    assert len(data.test) == 4 and len(data.train) == 18


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, server):
    write_cifar_batches(tmp_path / "src", per_batch=4)
    url = server.serve("/c.tar.gz", cifar_tarball(tmp_path / "src"))
    root = tmp_path / "root"
    with pytest.raises(DatasetNotFoundError, match="SHA-256"):
        load_cifar10(root=root, download=True, url=url, sha256="0" * 64)
    assert not any(p.is_file() for p in root.rglob("*"))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickles_that_run_code_are_refused(tmp_path):
    folder = tmp_path / "cifar10" / BATCH_DIR
    write_cifar_batches(folder, per_batch=2)
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": Evil()}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="test_batch was not loaded: Refusing"):
        load_cifar10(root=tmp_path, val_size=2)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2)[:40])
    with pytest.raises(ValueError, match="test_batch is truncated or corrupt"):
        load_cifar10(root=tmp_path, val_size=2)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="is not a CIFAR-10 batch: it holds a list"):
        load_cifar10(root=tmp_path, val_size=2)
