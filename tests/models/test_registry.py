import pytest
import torch

from saddlepoint.models import MODELS, build_model, count_parameters

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)


def params(name, shape=CIFAR, **kwargs):
    return count_parameters(build_model(name, in_shape=shape, num_classes=10, **kwargs))


# Seed 000, section 3: the transfer study's width family (3 blocks) and depth family.
@pytest.mark.parametrize(
    "width, expected",
    [
        (8, 21890),
        (16, 41978),
        (32, 85226),
        (64, 184010),
        (128, 430730),
        (256, 1120778),
        (512, 3287306),
    ],
)
def test_seed000_width_family(width, expected):
    assert params("surrogate-cnn", width=width) == expected


@pytest.mark.parametrize("depth, expected", [(1, 3690058), (2, 822922), (3, 184010), (4, 69386)])
def test_seed000_depth_family(depth, expected):
    assert params("surrogate-cnn", depth=depth) == expected


def test_seed000_overfitting_models():
    assert params("small-cnn") == 111050  # "model 32 64 128"
    assert params("large-cnn") == 439178  # "model 64 128 256"


def test_seed000_reference_target():
    # The report's 635,786 is matched exactly without batch-norm; its gamma/beta add 2 * 448.
    assert params("reference-cnn", batch_norm=False) == 635786
    assert params("reference-cnn") == 635786 + 896


def test_seed003_mlp():
    assert params("mlp", MNIST) == 407050


def test_resnet18_standard_count():
    assert params("resnet18") == 11173962


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_every_model_builds_and_runs(name, shape):
    if name == "resnet18" and shape == MNIST:
        shape = (1, 28, 28)
    model = build_model(name, in_shape=shape, num_classes=7)
    model.eval()
    logits = model(torch.rand(2, *shape))
    assert logits.shape == (2, 7)
    assert model.spec["name"] == name
    assert torch.isfinite(logits).all()


def test_overrides_are_checked():
    with pytest.raises(TypeError, match="'dropuot'.*Did you mean 'dropout'"):
        build_model("small-cnn", in_shape=MNIST, num_classes=10, dropuot=0.2)
    with pytest.raises(ValueError, match="'dropout' parameter of ConvNet"):
        build_model("small-cnn", in_shape=MNIST, num_classes=10, dropout=1.5)
    with pytest.raises(ValueError, match="Did you mean 'small-cnn'"):
        build_model("smal-cnn", in_shape=MNIST, num_classes=10)


def test_too_small_input_is_explained():
    with pytest.raises(ValueError, match="shrink"):
        build_model("reference-cnn", in_shape=(1, 8, 8), num_classes=10)


def test_normalization_is_inside_the_model():
    model = build_model("mlp", in_shape=(1, 2, 2), num_classes=2, mean=[0.5], std=[0.25])
    x = torch.full((1, 1, 2, 2), 0.75)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))


def test_pad_to_is_zero_padding_in_pixel_space():
    # The seed's 4-block surrogate on 28x28 images, padded to 32x32, is the 32x32 model applied
    # to the image with a zero border (before normalization: black, MNIST's background).
    with pytest.raises(ValueError, match="shrink"):
        build_model("surrogate-cnn", in_shape=MNIST, num_classes=10, depth=4)
    options = dict(num_classes=10, depth=4, width=8, mean=[0.13], std=[0.31])
    padded = build_model("surrogate-cnn", in_shape=MNIST, pad_to=32, **options).eval()
    large = build_model("surrogate-cnn", in_shape=(1, 32, 32), **options).eval()
    large.load_state_dict(padded.state_dict())
    x = torch.rand(5, *MNIST)
    bordered = torch.zeros(5, 1, 32, 32)
    bordered[:, :, 2:30, 2:30] = x
    assert torch.allclose(padded(x), large(bordered), atol=1e-5)
    assert params("surrogate-cnn", depth=4, pad_to=32) == 69386  # a no-op at CIFAR-10's size
    with pytest.raises(ValueError, match="pad_to"):
        build_model("surrogate-cnn", in_shape=MNIST, num_classes=10, pad_to=20)


def test_head_dropout_false_keeps_dropout_after_the_conv_blocks_only():
    both = build_model("grid-cnn", in_shape=MNIST, num_classes=10, dropout=0.25)
    blocks = build_model("grid-cnn", in_shape=MNIST, num_classes=10, dropout=0.25, head_dropout=0)

    def dropouts(part):
        return sum(isinstance(m, torch.nn.Dropout) for m in part.modules())

    assert dropouts(both.features) == dropouts(blocks.features) == 3
    assert dropouts(both.head) == 1 and dropouts(blocks.head) == 0
    assert count_parameters(both) == count_parameters(blocks)
