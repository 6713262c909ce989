"""The summary of a comparison (:func:`ldwseg.analysis.compare_summary.summarise`) as Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .complexity import format_count

__all__ = ["format_summary"]


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _interim(summary: dict[str, Any]) -> list[str]:
    """The line that marks a summary of fewer seeds than planned (:func:`~ldwseg.analysis.compare.run_compare` with ``train=False``)."""
    seeds, planned = summary["seeds"], summary.get("planned_seeds", summary["seeds"])
    if len(seeds) >= len(planned):
        return []
    return [
        f"Interim: {len(seeds)} of {len(planned)} seeds have finished runs of every variant "
        f"(seeds {', '.join(map(str, seeds))}). The tests and decisions below are of these seeds only, not the "
        f"verdict of a rule written for all {len(planned)}.",
        "",
    ]


def format_summary(summary: dict[str, Any], *, split: str = "val", classes: Sequence[str] | None = None) -> str:
    """The summary as Markdown: one row per variant, one per pair, and the per-class IoU means; a first
    line says so when it holds fewer seeds than were planned.

    ``split`` names where the scores come from; ``classes`` picks the per-class columns
    (``iou_<name>`` keys without ``iou_``; default: all, when the task reports them).
    """
    n = len(summary["seeds"])
    metric = summary["metric"]
    better = "higher" if summary.get("higher_is_better", True) else "lower"
    lines = _interim(summary) + [
        f"| variant | params | FLOPs | step | {split} {metric} (mean ± std, {n} seed{'s' * (n != 1)}) | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for v in summary["variants"]:
        seeds = ", ".join(f"{s:.4f}" for s in v["scores"])
        lines.append(
            f"| {v['name']} | {format_count(v['params'])} | {format_count(v['flops'])} | {v['step_ms']:.0f} ms | "
            f"{v['mean']:.4f} ± {v['std']:.4f} | {seeds} |"
        )
    margin = summary.get("margin")
    tost = f"TOST p (±{margin:g}; Holm)" if margin is not None else "TOST p (Holm)"
    lines += [
        "",
        f"| pair (second - first; {better} is better) | difference (mean ± std) | 95% interval | wins | t "
        f"| p (one-sided) | p (Holm) | {tost} | decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in summary.get("pairs", []):
        interval = "-" if p["ci95"] is None else f"[{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]"
        role = "primary: " if p["primary"] else ""
        lines.append(
            f"| {role}{p['reference']} -> {p['candidate']} | {p['diff_mean']:+.4f} ± {p['diff_std']:.4f} | {interval} "
            f"| {p['wins']}/{p['n']} | {_num(p['t'], '.2f')} | {_num(p['p'], '.4f')} | {_num(p['p_holm'], '.4f')} "
            f"| {_tost(p)} | {p['decision']} |"
        )
    shown = list(classes or dict.fromkeys(c for v in summary["variants"] for c in v.get("per_class", {})))
    if shown:
        lines += ["", f"| variant | {' | '.join(shown)} |", "|---|" + "---|" * len(shown)]
        for v in summary["variants"]:
            cells = " | ".join(_num(v.get("per_class", {}).get(c), ".4f") for c in shown)
            lines.append(f"| {v['name']} | {cells} |")
    return "\n".join(lines)


def _tost(pair: dict[str, Any]) -> str:
    """The equivalence test's p, with its Holm-adjusted value for a secondary pair (what it is decided on)."""
    raw = _num(pair["p_equivalence"], ".4f")
    if pair["primary"] or pair["p_equivalence"] is None:
        return raw
    return f"{raw} ({_num(pair.get('p_equivalence_holm'), '.4f')})"
