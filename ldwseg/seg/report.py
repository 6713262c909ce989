"""The evaluation report of ``ldwseg evaluate --report DIR``: per-class scores and the confusion matrix.

Three files, each written atomically:

* ``per_class.csv``: one row per class (in label order): its name, IoU, accuracy (its
  recall, ``TP / (TP + FN)``), precision (``TP / (TP + FP)``) and its labelled pixels;
  an undefined score is an empty cell;
* ``confusion.csv``: the raw confusion matrix ``C[target, prediction]`` in pixels, the
  classes named in the first row and column;
* ``confusion.png``: the matrix normalised by rows (each true class's pixels sum to 1), so
  the diagonal is each class's accuracy and a row shows where its pixels went.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write

__all__ = ["REPORT_FILES", "confusion_figure", "row_normalised", "write_report"]

REPORT_FILES = ("per_class.csv", "confusion.csv", "confusion.png")


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)

    atomic_write(path, write)


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """``confusion`` with each row divided by its sum (rows of a class never seen stay 0)."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]):
    """A matplotlib figure of the row-normalised confusion matrix, each cell labelled when there is room."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(class_names)
    side = min(2.0 + 0.55 * k, 16.0)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shares = row_normalised(confusion)
    image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(image, ax=ax, label="share of the true class's pixels")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for t in range(k):
            for p in range(k):
                ax.text(p, t, f"{shares[t, p]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if shares[t, p] > 0.5 else "black")  # fmt: skip
    return fig


def write_report(result: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write :data:`REPORT_FILES` for an :func:`~ldwseg.seg.evaluate.evaluate_checkpoint` result into ``folder``.

    Returns the files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(result["class_names"])
    confusion = np.asarray(result["confusion"], dtype=np.int64)
    rows: list[list[Any]] = [["class", "iou", "accuracy", "precision", "pixels"]]
    for k, name in enumerate(names):
        rows.append([
            name, _cell(result["per_class_iou"][k]), _cell(result["per_class_acc"][k]),
            _cell(result["per_class_precision"][k]), int(confusion[k].sum()),
        ])  # fmt: skip
    written = [folder / name for name in REPORT_FILES]
    _write_csv(written[0], rows)
    _write_csv(written[1], [["true \\ predicted", *names], *([n, *map(int, r)] for n, r in zip(names, confusion))])
    fig = confusion_figure(confusion, names)
    atomic_write(written[2], lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return written
