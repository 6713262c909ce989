"""Learning curves: the validation score of runs against the epoch, as a figure and a table.

Reads the ``metrics.csv`` of each run folder (``ldwseg train``'s, or one archived under
``docs/evidence/``), plots ``val_<metric>`` against the epoch for every run, and prints one
Markdown row per run: the best score and its epoch, the final score, and the budget rule of
``docs/results.md``: the first epoch, among multiples of ``--every``, whose score lies within
``--within`` of the run's best.

Usage::

    python bench/learning_curve.py docs/evidence/converged-camvid/max/seed0 --out curve.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def val_scores(run: Path, metric: str) -> list[tuple[int, float]]:
    """``(epoch, val_<metric>)`` for every epoch of ``run/metrics.csv`` that was validated."""
    path = run / "metrics.csv" if run.is_dir() else run
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; give a run folder holding a metrics.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    column = f"val_{metric}"
    if rows and column not in rows[0]:
        raise SystemExit(f"error: {path} has no {column} column; its val columns: "
                         f"{', '.join(c for c in rows[0] if c.startswith('val_'))}")  # fmt: skip
    return [(int(r["epoch"]), float(r[column])) for r in rows if r.get(column) not in (None, "")]


def budget(scores: list[tuple[int, float]], *, every: int, within: float) -> int | None:
    """The first epoch, among multiples of ``every``, whose score is within ``within`` of the best."""
    best = max(s for _, s in scores)
    return next((e for e, s in scores if e % every == 0 and s >= best - within), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="Run folders (or metrics.csv files).")
    parser.add_argument("--metric", default="miou", help="The val_* column without val_ [default: miou].")
    parser.add_argument("--every", type=int, default=10, help="Epochs the budget may take [default: 10].")
    parser.add_argument("--within", type=float, default=0.01, help="Budget tolerance below the best [default: 0.01].")
    parser.add_argument("--out", type=Path, default=None, help="Write the figure here (PNG) [default: no figure].")
    args = parser.parse_args()
    curves = {str(run): val_scores(run, args.metric) for run in args.runs}
    print(
        f"| run | best val {args.metric} (epoch) | final | budget (first multiple of {args.every} within {args.within}) |"
    )
    print("|---|---|---|---|")
    for name, scores in curves.items():
        if not scores:
            print(f"| {name} | - | - | - |")
            continue
        top = max(scores, key=lambda es: es[1])
        print(f"| {name} | {top[1]:.4f} ({top[0]}) | {scores[-1][1]:.4f} ({scores[-1][0]}) | "
              f"{budget(scores, every=args.every, within=args.within)} |")  # fmt: skip
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, scores in curves.items():
            ax.plot([e for e, _ in scores], [s for _, s in scores], marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val {args.metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
