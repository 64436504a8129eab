"""PNG plots of the golden-set evaluation: confusion matrix (classification), predicted vs
actual and residuals (regression). Matplotlib runs headless (Agg); files are written
atomically under `plots/`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlci.stats.metrics import Predictions

MAX_POINTS = 5000  # a scatter of more points says nothing more and makes a large PNG


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from mlci.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def confusion_matrix(pr: Predictions, path: Path, title: str) -> None:
    from mlci.stats.metrics import confusion

    plt = _pyplot()
    cm = confusion(pr)
    labels = [str(c) for c in pr.classes or []]
    # readable at a PR comment's width: at least 4.5 in (≈ 680 px at 150 dpi), the title
    # wrapped above the axes instead of clipped, tight bounding box
    side = max(4.5, 2.0 + 0.55 * len(labels))
    fig, ax = plt.subplots(figsize=(side, side), dpi=150)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 40)), fontsize=10)
    vmax = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black")
    _save(fig, path)


def _thin(pr: Predictions):
    import numpy as np

    n = len(pr.y_true)
    idx = np.arange(n) if n <= MAX_POINTS else \
        np.random.default_rng(0).choice(n, MAX_POINTS, replace=False)
    return pr.y_true[idx], pr.y_pred[idx]


def predicted_vs_actual(pr: Predictions, path: Path, title: str) -> None:
    plt = _pyplot()
    y, p = _thin(pr)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(y, p, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend(loc="upper left")
    _save(fig, path)


def residuals(pr: Predictions, path: Path, title: str) -> None:
    plt = _pyplot()
    y, p = _thin(pr)
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(8, 3.6), dpi=100)
    ax.scatter(p, y - p, s=8, alpha=0.5)
    ax.axhline(0, color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual − predicted")
    ax.set_title(title)
    hx.hist(pr.y_true - pr.y_pred, bins=30)
    hx.set_xlabel("residual")
    hx.set_ylabel("rows")
    _save(fig, path)


GRID_MAX = 16  # misclassified images shown: enough to see a pattern, small enough for a PR


def misclassified_grid(pr: Predictions, images, path: Path, title: str) -> bool:
    """A grid of the first misclassified golden images, each titled "true -> predicted";
    False (nothing written) when every image was classified right."""
    import numpy as np

    wrong = np.flatnonzero(pr.y_pred != pr.y_true)[:GRID_MAX]
    if not len(wrong):
        return False
    plt = _pyplot()
    classes = [str(c) for c in pr.classes or []]
    cols = min(4, len(wrong))
    rows = -(-len(wrong) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows + 0.4), dpi=100,
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        img = images[i]
        gray = img.shape[-1] == 1
        ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None,
                  vmin=0, vmax=255, interpolation="nearest")
        true = classes[pr.y_true[i]] if 0 <= pr.y_true[i] < len(classes) else "?"
        ax.set_title(f"{true[:12]} -> {classes[pr.y_pred[i]][:12]}", fontsize=8)
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, 50)), fontsize=9)
    _save(fig, path)
    return True
