"""Adversarial image grids: several examples to a row, each as original / perturbation /
adversarial."""

import pytest
import torch
from PIL import Image

from saddlepoint.attacks import build_attack
from saddlepoint.viz.grids import adversarial_grid
from tests.attacks.models import tiny_convnet


def test_grid_lays_examples_out_several_to_a_row(tmp_path):
    x = torch.rand(7, 1, 6, 6)
    result = build_attack("fgsm", eps=0.2)(tiny_convnet(), x, torch.zeros(7, dtype=torch.long))
    shown = adversarial_grid(result, tmp_path / "wide.png", count=7, per_row=4)
    assert sorted(shown) == list(range(7))
    width, height = Image.open(tmp_path / "wide.png").size
    assert width > 2 * height  # 2 rows of 4 examples x 3 panels
    adversarial_grid(result, tmp_path / "tall.png", count=3, per_row=1)
    width, height = Image.open(tmp_path / "tall.png").size
    assert height > width  # one example a row: the old tall column
    with pytest.raises(ValueError, match="'per_row'"):
        adversarial_grid(result, tmp_path / "x.png", per_row=0)
