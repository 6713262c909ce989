"""Figures of learned LDW filters, of wavelet-weight (λ) sweeps and of comparisons, and their CSV files.

matplotlib is imported inside the functions, so ``import ldwseg`` does not load it. The
figures are drawn on an Agg canvas made for each of them, without pyplot: no global
backend or figure registry is touched, which keeps the functions safe in headless
scripts, tests and notebooks alike. Every file is written atomically (temporary file,
then rename) with :func:`ldwseg.io.atomic.atomic_write`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.atomic import atomic_write
from .filter_report import PoolReport, frequency_response

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "compare_figure",
    "filters_figure",
    "plot_compare",
    "plot_filters",
    "plot_sweep",
    "sweep_figure",
    "write_csv",
]

DPI = 100
SWEEP_KEYS = ("wavelet_weight", "constraint", "roundtrip_psnr", "wavelet_loss", "pr_error")
CSV_LEADING = ("constraint", "wavelet_weight")
PSNR_CEILING = 150.0
"""Where an exact round trip (PSNR = inf) is drawn, in dB; float32 round trips stay far below."""
LOG_FLOOR = 1e-16
"""Where zeros (and anything smaller) are drawn on the log-scaled loss and PR-error panels."""


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


def _pi_ticks(ax: Axes) -> None:
    ax.set_xlim(0.0, math.pi)
    ax.set_xticks([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi], ["0", "π/4", "π/2", "3π/4", "π"])


def filters_figure(reports: Sequence[PoolReport], *, n: int = 256) -> Figure:
    """The figure of :func:`plot_filters`, for callers that show or save it themselves."""
    if not reports:
        raise ValueError(
            "plotting filters needs at least one PoolReport; pool_reports(model) returned none, "
            "so the model has no LDWPool2d (build it with model.down=ldw)"
        )
    fig = _figure(15.0, 0.4 + 2.8 * len(reports))
    axes = fig.subplots(len(reports), 3, squeeze=False, width_ratios=(1.0, 1.0, 1.2))
    for row, (r, (taps_ax, change_ax, freq_ax)) in enumerate(zip(reports, axes)):
        taps = np.arange(r.kernel_size)
        # W_L's stems just left of each tap, W_H's just right, so that they do not hide each other
        for label, learned, initial, color, shift in (
            ("W_L", r.low, r.initial_low, "C0", -0.12),
            ("W_H", r.high, r.initial_high, "C1", 0.12),
        ):
            start = taps_ax.stem(taps + shift, initial, linefmt=f"{color}--", markerfmt=f"{color}o", basefmt=" ")
            start.markerline.set_markerfacecolor("none")
            start.set_label(f"{label} initial")
            taps_ax.stem(
                taps + shift, learned, linefmt=f"{color}-", markerfmt=f"{color}o", basefmt=" ", label=f"{label} learned"
            )
            change_ax.stem(taps + shift, learned - initial, linefmt=f"{color}-", markerfmt=f"{color}o", basefmt=" ",
                           label=f"{label} learned - initial")  # fmt: skip
            omega, initial_mag = frequency_response(initial, n)
            _, learned_mag = frequency_response(learned, n)
            freq_ax.plot(omega, initial_mag, color=color, linestyle="--", label=f"|{label}| initial")
            freq_ax.plot(omega, learned_mag, color=color, label=f"|{label}| learned")
        for ax in (taps_ax, change_ax):
            ax.axhline(0.0, color="0.6", linewidth=0.8)
            ax.set_xticks(taps)
        taps_ax.set_title(f"{r.name}: taps ({r.constraint}, K={r.kernel_size}, init {r.wavelet_name})", fontsize=10)
        taps_ax.set_ylabel("tap value")
        change_ax.set_title(f"{r.name}: change in training, max |Δ| {r.max_change:.2e}", fontsize=10)
        change_ax.set_ylabel("learned − initial")
        _pi_ticks(freq_ax)
        freq_ax.set_title(
            f"{r.name}: magnitude, PR error {r.pr_error:.2e}, {r.constraint} loss {r.wavelet_loss:.2e}", fontsize=10
        )
        freq_ax.set_ylabel("|W(ω)|")
        if row == 0:
            taps_ax.legend(fontsize="small", ncols=2)
            change_ax.legend(fontsize="small")
            freq_ax.legend(fontsize="small", ncols=2)
        if row == len(reports) - 1:
            taps_ax.set_xlabel("tap n")
            change_ax.set_xlabel("tap n")
            freq_ax.set_xlabel("ω (rad/sample)")
    return fig


def plot_filters(reports: Sequence[PoolReport], path: str | os.PathLike, *, n: int = 256) -> Path:
    """Save a PNG with one row per pool: taps (left), their change in training (middle), magnitude responses (right).

    Learned ``W_L`` and ``W_H`` are solid, their initial filters dashed; the middle panel
    shows ``learned - initial`` tap by tap, so that a small change is visible. Each row's
    titles give the constraint, ``K``, the largest change, the PR error and the constraint loss.

    Args:
        reports: from :func:`ldwseg.analysis.filter_report.pool_reports`.
        path: the PNG to create or replace (atomically).
        n: frequencies of the responses over ``[0, pi]``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return _save_png(filters_figure(reports, n=n), path)


def _check_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    if not rows:
        raise ValueError("a sweep needs at least one row (one dict per trained run)")
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(
                f"sweep row {i} lacks {', '.join(repr(k) for k in missing)}; every row needs "
                f"{', '.join(repr(k) for k in keys)} (has {', '.join(repr(k) for k in row)})"
            )


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows], dtype=np.float64)


def sweep_figure(rows: Sequence[Mapping[str, Any]], *, task_metric: str, task_label: str) -> Figure:
    """The figure of :func:`plot_sweep`, for callers that show or save it themselves."""
    _check_rows(rows, (*SWEEP_KEYS, task_metric))
    weights = _column(rows, "wavelet_weight")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"wavelet_weight values must be finite and >= 0, got {sorted(set(weights.tolist()))}")
    positive = weights[weights > 0]
    # symlog: linear between 0 and the smallest positive λ, logarithmic above, so λ = 0 is shown
    linthresh = float(positive.min()) if positive.size else 1.0

    fig = _figure(11.0, 7.5)
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        (axes[0, 0], task_metric, task_label, False),
        (axes[0, 1], "roundtrip_psnr", "round-trip PSNR of the pools (dB)", False),
        (axes[1, 0], "wavelet_loss", "constraint loss", True),
        (axes[1, 1], "pr_error", "PR error", True),
    ]
    clipped = {key: False for _, key, _, _ in panels}
    for constraint in dict.fromkeys(str(r["constraint"]) for r in rows):
        group = sorted(
            (r for r in rows if str(r["constraint"]) == constraint), key=lambda r: float(r["wavelet_weight"])
        )
        x = _column(group, "wavelet_weight")
        for ax, key, _, log in panels:
            y = _column(group, key)
            if key == "roundtrip_psnr":
                exact = np.isposinf(y)
                y = np.where(exact, PSNR_CEILING, y)
            elif log:
                exact = y <= LOG_FLOOR
                y = np.where(exact, LOG_FLOOR, y)
            else:
                exact = np.zeros_like(y, dtype=bool)
            clipped[key] |= bool(exact.any())
            ax.plot(x, y, marker="o", label=constraint)

    ticks = sorted(set(weights.tolist()))
    for ax, key, label, log in panels:
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if log:
            ax.set_yscale("log")
        if key == "roundtrip_psnr" and clipped[key]:
            ax.axhline(PSNR_CEILING, color="0.5", linestyle=":", linewidth=1.0)
            ax.annotate(
                "exact (PSNR = ∞)",
                (0.02, PSNR_CEILING),
                xycoords=("axes fraction", "data"),
                xytext=(0, -12),
                textcoords="offset points",
                fontsize="small",
                color="0.3",
            )
        elif log and clipped[key]:
            ax.axhline(LOG_FLOOR, color="0.5", linestyle=":", linewidth=1.0)
            ax.annotate(
                f"0 or ≤ {LOG_FLOOR:.0e}, drawn here",
                (0.02, LOG_FLOOR),
                xycoords=("axes fraction", "data"),
                xytext=(0, 6),
                textcoords="offset points",
                fontsize="small",
                color="0.3",
            )
    for ax in axes[1]:
        ax.set_xlabel("λ (wavelet loss weight)")
    axes[0, 0].legend(title="constraint", fontsize="small")
    fig.suptitle(f"{task_label} and filter quality against λ")
    return fig


def plot_sweep(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, task_metric: str, task_label: str
) -> Path:
    """Save a PNG of a λ sweep: four panels sharing the λ axis, one line per constraint mode.

    Panels: the task metric, the round-trip PSNR of the learned pools, the constraint
    (wavelet) loss and the PR error, the last two on log scales. λ is on a symlog axis
    so that λ = 0 appears. An exact round trip (PSNR ``inf``) is drawn at
    ``PSNR_CEILING`` dB and marked "exact"; losses and PR errors of 0 are drawn at
    ``LOG_FLOOR``, with a note.

    Args:
        rows: one dict per run with ``wavelet_weight``, ``constraint``, ``task_metric``,
            ``roundtrip_psnr``, ``wavelet_loss`` and ``pr_error`` (numbers or numeric
            strings, as read back from :func:`write_csv`'s file).
        path: the PNG to create or replace (atomically).
        task_metric: the key of the task's metric in ``rows`` (``"miou"``, ``"psnr"``, ...).
        task_label: its axis label (``"val mIoU"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return _save_png(sweep_figure(rows, task_metric=task_metric, task_label=task_label), path)


def compare_figure(summary: Mapping[str, Any], *, label: str) -> Figure:
    """The figure of :func:`plot_compare`, for callers that show or save it themselves."""
    variants = summary["variants"]
    fig = _figure(max(4.0, 1.2 * len(variants) + 1.5), 3.6)
    ax = fig.add_subplot()
    for i, v in enumerate(variants):
        scores = np.asarray(v["scores"], dtype=float)
        offsets = np.linspace(-0.12, 0.12, len(scores)) if len(scores) > 1 else np.zeros(1)
        ax.plot(i + offsets, scores, "o", color="0.55", markersize=4, label="seeds" if i == 0 else None)
        ax.errorbar([i], [v["mean"]], yerr=[v["std"]], fmt="_", color="C0", markersize=18, capsize=6,
                    label="mean ± std" if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(variants)), [v["name"] for v in variants], rotation=20, ha="right")
    ax.set_ylabel(label)
    ax.set_title(f"{len(summary['seeds'])} seeds per variant")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_compare(summary: Mapping[str, Any], path: str | os.PathLike, *, label: str) -> Path:
    """Save a PNG of a comparison: each variant's per-seed scores and their mean ± std.

    Args:
        summary: what :func:`ldwseg.analysis.compare_summary.summarise` returns.
        path: the PNG to create or replace (atomically).
        label: the axis label of the scores (``"val miou"``).
    """
    return _save_png(compare_figure(summary, label=label), path)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write sweep rows to a CSV file atomically.

    Columns: ``constraint`` and ``wavelet_weight`` first (when present), then every other
    key in the order it first appears in ``rows``. A row without some key gets an empty
    cell. Floats are written with ``str`` (shortest exact form), so ``float(cell)``
    reads back the same value, ``inf`` and ``nan`` included.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if not rows:
        raise ValueError("write_csv needs at least one row (one dict per trained run)")
    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = [k for k in CSV_LEADING if k in keys] + [k for k in keys if k not in CSV_LEADING]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    path = Path(path)
    atomic_write(path, write)
    return path
