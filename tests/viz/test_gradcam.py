import pytest
import torch
from torch import nn

from saddlepoint.viz.gradcam import conv_layers, grad_cam, gradcam_figure


class Spotter(nn.Module):
    """One 3x3 conv detecting bright pixels, then global average pooling into two classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 2, 3, padding=1)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.weight[0, 0, 1, 1] = 1.0  # channel 0: the pixel itself
            self.features.weight[1, 0, 1, 1] = -1.0
            self.features.bias.zero_()
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(torch.relu(self.features(x)).mean(dim=(2, 3)))


def test_map_peaks_where_the_evidence_is_and_leaves_weights_alone():
    model = Spotter()
    x = torch.zeros(2, 1, 12, 12)
    x[0, 0, 1:4, 8:11] = 1.0  # top-right square
    x[1, 0, 8:11, 1:4] = 1.0  # bottom-left square
    maps = grad_cam(model, x, torch.tensor([0, 0]))
    assert maps.shape == (2, 12, 12)
    assert float(maps.min()) >= 0 and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2))
    for k, (rows, cols) in enumerate([((1, 4), (8, 11)), ((8, 11), (1, 4))]):
        peak = divmod(int(maps[k].argmax()), 12)
        assert rows[0] <= peak[0] < rows[1] and cols[0] <= peak[1] < cols[1]
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_layer_choice_and_errors(tmp_path):
    model = Spotter()
    assert conv_layers(model) == ["features"]
    x = torch.rand(3, 1, 12, 12)
    assert torch.equal(grad_cam(model, x), grad_cam(model, x, layer="features"))
    with pytest.raises(ValueError, match="no layer 'head2'.*features"):
        grad_cam(model, x, layer="head2")
    with pytest.raises(ValueError, match="needs a model with a Conv2d layer"):
        grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(144, 2)), x)
    gradcam_figure(model, x, x.flip(-1), tmp_path / "cam.png")
    assert (tmp_path / "cam.png").stat().st_size > 1000
