"""The statistics of a comparison: per variant its scores, mean ± std and per-class IoU; per
pair of variants the paired tests of :mod:`ldwseg.analysis.statistics` and the decision.

:func:`summarise` reads rows of finished runs, whoever trained them
(:func:`ldwseg.analysis.compare.run_compare`, or a script scoring kept checkpoints on a
held-out split); :mod:`ldwseg.analysis.compare_table` prints what it returns.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from typing import Any

from .statistics import decide, holm, paired_test

__all__ = ["higher_is_better", "summarise"]


_LOWER_IS_BETTER = re.compile(r"^(l1|l2|mse|mae)$|loss|error")


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: not for errors and losses (``l1``, ``mse``, ``*loss*``, ``*error*``).

    >>> higher_is_better("miou"), higher_is_better("l1"), higher_is_better("task_loss")
    (True, False, False)
    """
    return _LOWER_IS_BETTER.search(metric) is None


def summarise(
    rows: Sequence[dict[str, Any]],
    *,
    metric: str,
    variants: list[str],
    seeds: list[int],
    pairs: Sequence[tuple[str, str]] | None = None,
    margin: float | None = None,
    primary: bool = True,
) -> dict[str, Any]:
    """Per variant: cost, per-seed scores, mean ± std, per-class IoU means; per pair: the paired statistics.

    ``scores`` are final-epoch val values in seed order, ``best_scores`` the best epoch's
    (the lowest for a lower-is-better metric, see :func:`higher_is_better`); ``std`` is the
    sample standard deviation (n - 1). Each variant also carries its difference to the
    first variant (``diff_mean``, ``diff_std``, ``wins``, ``t``: ``null`` when undefined).

    ``pairs`` lists ``(reference, candidate)`` names, by default every variant against the
    first. ``summary["pairs"]`` holds, per pair, :func:`~ldwseg.analysis.statistics.paired_test`
    of candidate minus reference (with ``margin`` for the equivalence test) plus
    ``primary`` (the first pair, unless ``primary=False``: then every pair is secondary),
    ``p_holm``, ``p_loss_holm`` and ``p_equivalence_holm`` (the secondary pairs' p-values of
    each of the three tests adjusted together by Holm, test by test; the primary's own p-values)
    and ``decision`` from them.
    """
    by = {(r["variant"], r["seed"]): r for r in rows}
    higher = higher_is_better(metric)
    scores = {name: [by[name, s]["score"] for s in seeds] for name in variants}
    out = []
    for name in variants:
        runs = [by[name, s] for s in seeds]
        vs_first = paired_test(scores[name], scores[variants[0]], higher_is_better=higher)
        classes = list(dict.fromkeys(k[4:] for r in runs for k in r if k.startswith("iou_")))
        per_class = {c: _mean_defined([r.get(f"iou_{c}") for r in runs]) for c in classes}
        out.append({
            "name": name, "params": runs[0]["params"], "flops": runs[0]["flops"], "step_ms": runs[0]["step_ms"],
            "peak_mem_mb": runs[0]["peak_mem_mb"], "scores": scores[name],
            "best_scores": [r["best_score"] for r in runs], "mean": statistics.mean(scores[name]),
            "std": statistics.stdev(scores[name]) if len(seeds) > 1 else 0.0, "diff_mean": vs_first["diff_mean"],
            "diff_std": vs_first["diff_std"], "wins": vs_first["wins"], "t": vs_first["t"], "per_class": per_class,
        })  # fmt: skip
    pairs = list(pairs) if pairs else [(variants[0], name) for name in variants[1:]]
    tests = [
        {"reference": ref, "candidate": cand, **paired_test(scores[cand], scores[ref], higher_is_better=higher,
                                                            margin=margin)}
        for ref, cand in pairs
    ]  # fmt: skip
    first = 1 if primary else 0
    for key in ("p", "p_loss", "p_equivalence"):
        adjusted = holm([t[key] for t in tests[first:]])
        for i, test in enumerate(tests):
            test[f"{key}_holm"] = test[key] if i < first else adjusted[i - first]
    for i, test in enumerate(tests):
        test["primary"] = i < first
        if i >= first:
            test["decision"] = decide(test["p_holm"], test["p_loss_holm"], test["p_equivalence_holm"])
    return {
        "metric": metric, "higher_is_better": higher, "margin": margin, "seeds": seeds, "variants": out,
        "pairs": tests,
    }  # fmt: skip


def _mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the finite ``values`` (``None`` when there is none: the class was never scored)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.mean(finite) if finite else None
