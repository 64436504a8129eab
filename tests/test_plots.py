"""Plots a reviewer reads in a PR comment: wide enough, nothing clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mlci.report import plots
from mlci.stats.metrics import Predictions


def test_confusion_matrix_is_readable_at_pr_width(tmp_path: Path) -> None:
    """It was 240×220 px with a clipped title; a PR comment shows images up to ~880 px wide."""
    y = np.array([0, 1, 2, 0, 1, 2, 1])
    classes = ["setosa", "versicolor", "virginica"]
    pr = Predictions(y, np.array([0, 1, 1, 0, 2, 2, 1]), None, classes)
    out = tmp_path / "cm.png"
    plots.confusion_matrix(pr, out, "iris v12 on golden, with a title long enough to wrap twice")
    width, height = Image.open(out).size
    assert 550 <= width <= 1000 and 550 <= height <= 1100, (width, height)
    px = np.asarray(Image.open(out).convert("L"))
    assert (px[:5] > 250).all() and (px[:, :5] > 250).all()  # a white margin: nothing cut off
