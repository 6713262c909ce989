"""Paired comparisons of two designs over seeds: the test, the interval, the equivalence test, Holm.

Two variants trained with the same seeds (same initialisation draw, data order and
augmentation) give paired scores; their differences ``d_i = candidate_i - reference_i``
(``n`` seeds, mean ``dbar``, sample standard deviation ``s``) are tested with the paired
t test (``scipy.stats.ttest_rel``): ``t = dbar / (s / sqrt(n))`` with ``n - 1`` degrees of
freedom.

* **Gain**: the one-sided test that the candidate is better (``dbar > 0``, or ``< 0`` for a
  lower-is-better score such as an L1 error) rejects at ``alpha`` (0.05): at 5 seeds,
  ``t > 2.132``, the same as the lower bound of the one-sided 95% interval above 0.
* **Equivalent within the margin** ``m``: two one-sided tests (TOST) reject both
  ``dbar <= -m`` and ``dbar >= m`` at ``alpha``, i.e. the 90% interval of ``dbar`` lies
  inside ``(-m, m)``: "no gain of ``m`` or more".
* **Loss**: the mirror of a gain (the candidate significantly worse).
* Otherwise **inconclusive**.

The 95% interval reported is the two-sided t interval ``dbar +- t_{0.975, n-1} s / sqrt(n)``.
When every difference is the same (``s = 0``) or there is one seed, ``t`` and the p-values
are undefined (``None``), not the huge numbers that rounding in ``s`` would give.

Secondary comparisons (all but the pre-registered primary one) have their one-sided
p-values adjusted by Holm's step-down method (:func:`holm`), which bounds the chance of
any false gain among them at ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "DECISIONS", "holm", "paired_test"]

ALPHA = 0.05
DECISIONS = ("gain", "equivalent", "loss", "inconclusive")


def _all_equal(values: np.ndarray) -> bool:
    """Whether ``values`` are the same number up to rounding (their spread is below 1e-9 of their size)."""
    return float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.abs(values).max()))


def paired_test(
    candidate: Sequence[float],
    reference: Sequence[float],
    *,
    higher_is_better: bool = True,
    margin: float | None = None,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The paired comparison of ``candidate`` against ``reference`` (same seeds, same order).

    Returns a JSON-safe dict: ``n``, ``diff_mean``, ``diff_std``, ``ci95`` (``[low, high]``),
    ``ci90``, ``t``, ``p`` (one-sided, for a gain), ``p_loss`` (one-sided, for a loss),
    ``p_equivalence`` (TOST, ``None`` without ``margin``), ``wins`` (seeds where the
    candidate is better) and ``decision`` (one of :data:`DECISIONS`, from these unadjusted
    p-values). Undefined numbers are ``None``.

    Examples:
        >>> r = paired_test([0.52, 0.55, 0.51, 0.56, 0.54], [0.50, 0.51, 0.50, 0.52, 0.50], margin=0.01)
        >>> r["decision"], round(r["t"], 2), r["wins"]
        ('gain', 4.74, 5)
    """
    cand, ref = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if cand.shape != ref.shape or cand.ndim != 1 or cand.size == 0:
        raise ValueError(f"need two equally long, non-empty lists of scores, got {cand.shape} and {ref.shape}")
    diffs = cand - ref
    n = int(diffs.size)
    sign = 1.0 if higher_is_better else -1.0
    mean = float(diffs.mean())
    std = float(diffs.std(ddof=1)) if n > 1 and not _all_equal(diffs) else 0.0
    result: dict[str, Any] = {
        "n": n, "diff_mean": mean, "diff_std": std, "wins": int((sign * diffs > 0).sum()),
        "ci95": None, "ci90": None, "t": None, "p": None, "p_loss": None, "p_equivalence": None,
        "decision": "inconclusive",
    }  # fmt: skip
    if std == 0.0:
        return result
    sem = std / math.sqrt(n)
    t = mean / sem
    q95, q90 = float(stats.t.ppf(0.975, n - 1)), float(stats.t.ppf(0.95, n - 1))
    better = stats.t.sf(sign * t, n - 1)  # one-sided p for "the candidate is better"
    worse = stats.t.sf(-sign * t, n - 1)
    result.update(
        t=float(t), p=float(better), p_loss=float(worse),
        ci95=[mean - q95 * sem, mean + q95 * sem], ci90=[mean - q90 * sem, mean + q90 * sem],
    )  # fmt: skip
    if margin is not None:
        # TOST: H0 dbar <= -m rejected by a large (dbar + m) / sem, H0 dbar >= m by a small (dbar - m) / sem
        lower = stats.t.sf((mean + margin) / sem, n - 1)
        upper = stats.t.cdf((mean - margin) / sem, n - 1)
        result["p_equivalence"] = float(max(lower, upper))
    result["decision"] = decide(result["p"], result["p_loss"], result["p_equivalence"], alpha=alpha)
    return result


def decide(p_gain: float | None, p_loss: float | None, p_equivalence: float | None, *, alpha: float = ALPHA) -> str:
    """The decision of the rule in the module docstring from the three p-values (``None``: undefined)."""
    if p_gain is not None and p_gain < alpha:
        return "gain"
    if p_equivalence is not None and p_equivalence < alpha:
        return "equivalent"
    if p_loss is not None and p_loss < alpha:
        return "loss"
    return "inconclusive"


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of ``pvalues`` (``None`` entries stay ``None`` and do not count).

    With the ``k`` defined p-values sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (k - j + 1) p_(j))``; an adjusted p below ``alpha`` rejects.

    Examples:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    defined = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(defined):
        running = max(running, min(1.0, (len(defined) - rank) * p))
        adjusted[i] = running
    return adjusted
