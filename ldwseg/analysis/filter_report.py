"""What the LDW pools of a trained model learned: filters, constraint terms, PR error, spectra.

:func:`pool_reports` reads every :class:`~ldwseg.LDWPool2d` of a model (for a checkpoint,
the model :func:`~ldwseg.engine.checkpoints.load_run_model` rebuilds) into plain numbers
and arrays, :func:`format_reports` prints them as a table, :func:`report_json` turns one
into strict-JSON values (``ldwseg filters --json``) and :func:`frequency_response` gives
the magnitude responses that :mod:`ldwseg.analysis.plots` plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..pooling import LDWPool2d

__all__ = ["PoolReport", "format_reports", "frequency_response", "pool_reports", "report_json"]


@dataclass(frozen=True)
class PoolReport:
    """The state of one :class:`~ldwseg.LDWPool2d`; filters are float64 arrays of length ``kernel_size``."""

    name: str
    """Qualified name in the model (``"downs.0.pool"``); the class name for a bare pool."""
    constraint: str
    wavelet_name: str
    """The initial wavelet (``"haar"``, ``"random"``, ``"custom"`` for an explicit pair)."""
    kernel_size: int
    low: np.ndarray
    high: np.ndarray
    initial_low: np.ndarray
    initial_high: np.ndarray
    constraint_terms: dict[str, float]
    """The terms of the trained constraint loss (none for ``"lattice"``)."""
    paper_terms: dict[str, float]
    """Eqs. 9-12 on the current filters, whatever the trained constraint."""
    pr_error: float
    """Largest entry of ``A^T A - I`` for the analysis operator ``A`` (0 for an orthogonal PR bank)."""
    wavelet_loss: float
    """Sum of :attr:`constraint_terms` (Eq. 13 for ``constraint="paper"``)."""

    @property
    def max_change(self) -> float:
        """The largest change of a tap in training: ``max |learned - initial|`` over ``W_L`` and ``W_H``."""
        return float(max(np.abs(self.low - self.initial_low).max(), np.abs(self.high - self.initial_high).max()))

    @property
    def own_terms(self) -> dict[str, float]:
        """The terms of the pool's own constraint, named as :func:`format_reports` prints them
        (``paper.<term>`` for the paper's Eqs. 9-12; none for ``"lattice"``)."""
        if self.constraint == "paper":
            return {f"paper.{k}": v for k, v in self.paper_terms.items()}
        return dict(self.constraint_terms)


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


@torch.no_grad()
def pool_reports(model: nn.Module) -> list[PoolReport]:
    """One :class:`PoolReport` per :class:`~ldwseg.LDWPool2d` in ``model``, in module order.

    A pool reached through several paths (an :class:`~ldwseg.LDWUnpool2d` holds the pool
    it reverses) is reported once, under its first name.
    """
    reports = []
    for name, module in model.named_modules():
        if not isinstance(module, LDWPool2d):
            continue
        low, high = module.filters()
        reports.append(
            PoolReport(
                name=name or type(module).__name__,
                constraint=module.constraint,
                wavelet_name=module.wavelet_name,
                kernel_size=module.kernel_size,
                low=_array(low),
                high=_array(high),
                initial_low=_array(module.initial_low),
                initial_high=_array(module.initial_high),
                constraint_terms={k: float(v) for k, v in module.constraint_terms().items()},
                paper_terms={k: float(v) for k, v in module.paper_terms().items()},
                pr_error=module.pr_error(),
                wavelet_loss=float(module.wavelet_loss()),
            )
        )
    return reports


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def report_json(report: PoolReport) -> dict[str, Any]:
    """``report`` as plain JSON values: what ``ldwseg filters --json`` prints per pool.

    Taps are lists of floats; ``max_change`` is :attr:`PoolReport.max_change`.
    ``constraint_terms`` holds only the terms of the pool's own constraint (``{}`` for
    ``"lattice"``). The initial taps are the ones the pool was
    built with, as stored in the checkpoint (for ``wavelet="random"`` the very draw).
    A number that is not finite (filters that diverged in training) becomes ``None``, so
    the result passes ``json.dumps(..., allow_nan=False)``.

    Example:
        >>> (report,) = pool_reports(LDWPool2d(wavelet="haar", constraint="orthogonal"))
        >>> out = report_json(report)
        >>> out["name"], out["kernel_size"], [round(v, 4) for v in out["initial_high"]]
        ('LDWPool2d', 2, [0.7071, -0.7071])
        >>> sorted(out["constraint_terms"])
        ['cross_orthogonal', 'high_orthonormal', 'low_dc', 'low_orthonormal']
    """
    taps = {
        key: [_finite(v) for v in getattr(report, key).tolist()]
        for key in ("low", "high", "initial_low", "initial_high")
    }
    return {
        "name": report.name,
        "constraint": report.constraint,
        "wavelet": report.wavelet_name,
        "kernel_size": report.kernel_size,
        **taps,
        "constraint_terms": {k: _finite(v) for k, v in report.constraint_terms.items()},
        "wavelet_loss": _finite(report.wavelet_loss),
        "pr_error": _finite(report.pr_error),
        "max_change": _finite(report.max_change),
    }


def frequency_response(f: np.ndarray, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude response ``|F(omega)| = |sum_k f[k] exp(-i omega k)|`` on ``n`` points of ``[0, pi]``.

    The taps are real, so ``|F|`` is even and ``2 pi``-periodic and ``[0, pi]`` shows all
    of it. The phase of the correlation used by the pooling differs only in sign, which
    the magnitude does not see.

    Args:
        f: 1-D filter taps.
        n: number of frequencies, ``omega_j = pi j / (n - 1)``.

    Returns:
        ``(omega, magnitude)``, both of shape ``(n,)``.

    Example:
        >>> omega, mag = frequency_response(np.array([1.0, 1.0]) / np.sqrt(2), n=3)
        >>> np.round(mag, 6).tolist()  # sqrt(2) |cos(omega / 2)|
        [1.414214, 1.0, 0.0]
    """
    taps = np.asarray(f, dtype=np.float64)
    if taps.ndim != 1 or taps.size == 0:
        raise ValueError(f"frequency_response needs a non-empty 1-D filter, got shape {taps.shape}")
    if n < 2:
        raise ValueError(f"frequency_response needs n >= 2 frequencies to span [0, pi], got n={n}")
    omega = np.linspace(0.0, math.pi, n)
    response = np.exp(-1j * np.outer(omega, np.arange(taps.size))) @ taps
    return omega, np.abs(response)


def _number(value: float) -> str:
    return f"{value:.2e}"


def format_reports(reports: list[PoolReport]) -> str:
    """A plain-text table: pool, constraint, ``K``, wavelet loss, PR error, max change, then the loss terms.

    "max change" is the largest change of a tap from its initial value
    (:attr:`PoolReport.max_change`: 0 for filters that did not learn). The term columns
    are the terms of each pool's own constraint (:attr:`PoolReport.own_terms`; the
    paper's Eqs. 9-12 as ``paper.<term>``), "-" in the rows of pools with another
    constraint; a table of ``"lattice"`` pools alone has none.
    """
    if not reports:
        return "no LDWPool2d in the model (it has no learnable wavelet pooling to report)"
    term_names = list(dict.fromkeys(k for r in reports for k in r.own_terms))
    header = ["pool", "constraint", "K", "wavelet loss", "PR error", "max change", *term_names]
    rows = [header]
    for r in reports:
        terms = r.own_terms
        rows.append(
            [
                r.name,
                r.constraint,
                str(r.kernel_size),
                _number(r.wavelet_loss),
                _number(r.pr_error),
                _number(r.max_change),
                *(_number(terms[k]) if k in terms else "-" for k in term_names),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # names and the constraint read left-aligned, numbers right-aligned
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
