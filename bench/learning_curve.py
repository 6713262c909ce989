"""Learning curves: the validation score of runs against the epoch, as a figure and a table.

Reads the ``metrics.csv`` of each run folder (``ldwseg train``'s, or one archived under
``docs/evidence/``), plots ``val_<metric>`` against the epoch for every run, and prints one
Markdown row per run: the best score and its epoch, the final score, and the budget rule of
``docs/results.md``: the first epoch, among multiples of ``--every``, whose score lies within
``--within`` of the run's best.

``--mean`` draws one curve per design instead: the runs grouped by the folder that holds
them (``max/seed0``, ``max/seed1``, ... are ``max``), the mean over their seeds with a band
of one standard deviation either side, at the epochs that all of them validated; the table
then gives each design's final score as mean +- std over its seeds.

Usage::

    python bench/learning_curve.py docs/evidence/converged-camvid/max/seed0 --out curve.png
    python bench/learning_curve.py docs/evidence/converged-camvid/{max,default}/seed* --mean --out curves.png
"""

from __future__ import annotations

import argparse
import csv
import statistics
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


def design_means(curves: dict[Path, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float, float, int]]]:
    """Per design (the runs' parent folder): ``(epoch, mean, std, runs)`` at the epochs every one of its
    runs validated; std is the sample standard deviation (0 for one run)."""
    groups: dict[str, list[dict[int, float]]] = {}
    for run, scores in curves.items():
        groups.setdefault(run.parent.name or str(run), []).append(dict(scores))
    means = {}
    for design, runs in groups.items():
        epochs = sorted(set.intersection(*(set(r) for r in runs)))
        rows = []
        for e in epochs:
            values = [r[e] for r in runs]
            rows.append((e, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(runs)))
        means[design] = rows
    return means


def _print_means(means: dict[str, list[tuple[int, float, float, int]]], metric: str) -> None:
    print(f"| design | seeds | final val {metric} (mean ± std) | epoch | best mean (epoch) |")
    print("|---|---|---|---|---|")
    for design, rows in means.items():
        if not rows:
            print(f"| {design} | - | - | - | - |")
            continue
        epoch, mean, std, runs = rows[-1]
        top = max(rows, key=lambda row: row[1])
        print(f"| {design} | {runs} | {mean:.4f} ± {std:.4f} | {epoch} | {top[1]:.4f} ({top[0]}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="Run folders (or metrics.csv files).")
    parser.add_argument("--metric", default="miou", help="The val_* column without val_ [default: miou].")
    parser.add_argument("--every", type=int, default=10, help="Epochs the budget may take [default: 10].")
    parser.add_argument("--within", type=float, default=0.01, help="Budget tolerance below the best [default: 0.01].")
    parser.add_argument("--out", type=Path, default=None, help="Write the figure here (PNG) [default: no figure].")
    parser.add_argument("--mean", action="store_true", help="One curve per design: the mean over its seeds, +- std.")
    args = parser.parse_args()
    if args.mean:
        means = design_means({run: val_scores(run, args.metric) for run in args.runs})
        _print_means(means, args.metric)
        if args.out is not None:
            _plot({d: [(e, m) for e, m, _, _ in rows] for d, rows in means.items()}, args.metric, args.out,
                  bands={d: [(m - s, m + s) for _, m, s, _ in rows] for d, rows in means.items()})  # fmt: skip
        return
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
        _plot(curves, args.metric, args.out)


def _plot(
    curves: dict[str, list[tuple[int, float]]], metric: str, out: Path,
    bands: dict[str, list[tuple[float, float]]] | None = None,
) -> None:  # fmt: skip
    """One line per curve (with its band of ``(low, high)`` per epoch, when given), saved to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, scores in curves.items():
        epochs = [e for e, _ in scores]
        (line,) = ax.plot(epochs, [s for _, s in scores], marker=".", label=name)
        if bands is not None:
            ax.fill_between(epochs, *zip(*bands[name]), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"val {metric}" + (" (mean ± std over seeds)" if bands is not None else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
