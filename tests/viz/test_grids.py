"""Adversarial image grids: several examples to a row, each as original / perturbation /
adversarial."""

import pytest
import torch
from PIL import Image

from saddlepoint.attacks import build_attack
from saddlepoint.viz.grids import adversarial_grid, grid_figure
from tests.attacks.models import tiny_convnet


def test_grid_lays_examples_out_several_to_a_row(tmp_path):
    x = torch.rand(7, 1, 6, 6)
    model = tiny_convnet().eval()
    with torch.no_grad():
        y = model(x).argmax(1)  # every image read correctly
    result = build_attack("fgsm", eps=0.2)(model, x, y)
    shown = adversarial_grid(result, tmp_path / "wide.png", count=7, per_row=4)
    assert sorted(shown) == list(range(7))
    width, height = Image.open(tmp_path / "wide.png").size
    assert width > 2 * height  # 2 rows of 4 examples x 3 panels
    adversarial_grid(result, tmp_path / "tall.png", count=3, per_row=1)
    width, height = Image.open(tmp_path / "tall.png").size
    assert height > width  # one example a row: the old tall column
    with pytest.raises(ValueError, match="'per_row'"):
        adversarial_grid(result, tmp_path / "x.png", per_row=0)


def _fgsm_result(correct: int = 8, wrong: int = 0):
    torch.manual_seed(0)
    model = tiny_convnet().eval()
    x = torch.rand(correct + wrong, 1, 6, 6)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[correct:] = (y[correct:] + 1) % 4  # the last ones misclassified before any attack
    return build_attack("fgsm", eps=0.3)(model, x, y)


def test_no_caption_overlaps_an_image_of_another_row():
    fig, shown = grid_figure(_fgsm_result(), count=8, per_row=2)
    assert len(shown) == 8
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.axison]
    rows = sorted({round(ax.get_position().y0, 3) for ax in axes}, reverse=True)
    assert len(rows) == 4
    for ax in axes:
        title = ax.title.get_window_extent(renderer)
        for other in axes:
            if other is not ax and round(other.get_position().y0, 3) != round(
                ax.get_position().y0, 3
            ):
                assert not title.overlaps(other.get_window_extent(renderer)), ax.get_title()


def test_the_grid_is_titled_by_the_attack_that_made_it():
    fig, _ = grid_figure(_fgsm_result(), count=2)
    assert fig._suptitle.get_text().startswith("fgsm:")  # a preset of PGD says its own name
    fig, _ = grid_figure(_fgsm_result(), count=2, title="FGSM at 0.3")
    assert fig._suptitle.get_text().startswith("FGSM at 0.3:")


def test_images_misclassified_before_the_attack_are_not_shown():
    result = _fgsm_result(correct=3, wrong=5)
    _, shown = grid_figure(result, count=8)
    assert sorted(shown) == [0, 1, 2]
    _, shown = grid_figure(_fgsm_result(correct=0, wrong=4), count=4)
    assert sorted(shown) == [0, 1, 2, 3]  # none read correctly: show what there is


def test_example_predictions_mark_the_wrong_ones_red(tmp_path, monkeypatch):
    from saddlepoint.viz import grids

    captured = {}
    monkeypatch.setattr(grids, "save_figure", lambda fig, path: captured.update(fig=fig))
    images = torch.rand(5, 1, 6, 6)
    labels = torch.tensor([0, 1, 2, 3, 0])
    probabilities = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 3, 1]), 4).float()
    grids.examples_figure(images, labels, probabilities, tmp_path / "e.png", per_row=3)
    titles = [ax.title for ax in captured["fig"].axes if ax.axison]
    assert len(titles) == 5
    wrong = [t.get_text().startswith(("0 ", "1 ")) and t.get_color() == "crimson" for t in titles]
    assert wrong == [False, False, True, False, True]  # images 2 and 4 are misclassified
    assert "true 2" in titles[2].get_text()
