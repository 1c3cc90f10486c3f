"""The plots studies draw from their recorded tables."""

import math

import matplotlib.image
import pytest

from saddlepoint.experiments.studies.common import bar_table
from saddlepoint.runlog import Table


def _bars(tmp_path, rows, **options):
    table = Table("t", ["model", "clean", "attacked"], rows)
    path = tmp_path / "bars.png"
    bar_table(table, path, label="model", columns=["clean", "attacked"], **options)
    return matplotlib.image.imread(path)


def test_bar_table_draws_a_group_per_row_and_skips_missing_cells(tmp_path):
    image = _bars(tmp_path, [["a", 0.99, 0.3], ["b", 0.98, math.nan], ["c", 0.97, None]])
    assert image.ndim == 3 and image.shape[0] > 100
    # the same table with the missing cells filled draws more ink: a NaN or None drew no bar
    full = _bars(tmp_path, [["a", 0.99, 0.3], ["b", 0.98, 0.9], ["c", 0.97, 0.9]])
    assert full.shape == image.shape and full[..., :3].sum() < image[..., :3].sum()


def test_bar_table_names_a_legend_of_the_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="1 names for 2 columns"):
        _bars(tmp_path, [["a", 0.9, 0.1]], names=["clean"])
