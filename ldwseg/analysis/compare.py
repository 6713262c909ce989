"""Like-for-like comparisons: several model variants x several seeds at one budget.

Every run goes through :func:`ldwseg.tasks.train`, the training of ``ldwseg train``, with
the base config plus the variant's ``section.field=value`` overrides plus its seed, so a
score here equals that of ``ldwseg train`` with the same settings and ``--seed``. The
summary compares each variant with the first one seed by seed (a paired comparison: the
seed fixes the initialisation, the data order and the augmentation of both runs).

Runs live in ``out/<variant>/seed<k>``. A finished run leaves ``result.json`` there and
is not trained again; an unfinished one is resumed from its ``last.state.pt``, so a
killed compare, started again with the same arguments, goes on where it stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import Config, apply_overrides
from ..engine.logs import log_label
from ..engine.run_folder import check_same_settings
from ..engine.task import Task
from ..errors import ConfigError
from ..io.atomic import atomic_write
from ..io.weights import read_metadata
from ..tasks import get_task, train
from .cost import training_cost

__all__ = ["Variant", "parse_variant", "run_compare", "summarise", "format_summary"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
RESULT_FILE = "result.json"
COST_FILE = "cost.json"


@dataclass(frozen=True)
class Variant:
    """A named set of config overrides, e.g. ``Variant("ldw", ("model.down=ldw",))``."""

    name: str
    overrides: tuple[str, ...] = ()


def parse_variant(text: str) -> Variant:
    """``"name: section.field=value section.field=value"`` as a :class:`Variant`.

    >>> parse_variant("max: model.down=maxpool model.up=deconv")
    Variant(name='max', overrides=('model.down=maxpool', 'model.up=deconv'))
    """
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not _NAME.fullmatch(name):
        raise ConfigError(
            f"--variant {text!r} must look like 'NAME: section.field=value ...' with a NAME of letters, digits, "
            "'_', '-', '.' or '+', e.g. --variant \"ldw: model.down=ldw\""
        )
    overrides = tuple(rest.split())
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key == "train.seed":
            raise ConfigError(f"--variant {name!r} sets train.seed; the seeds come from --seeds")
        if key == "train.task":
            raise ConfigError(f"--variant {name!r} sets train.task; every variant of a compare has the base's task")
    return Variant(name, overrides)


def _run_config(base: Config, variant: Variant, seed: int) -> Config:
    cfg = apply_overrides(Config.from_dict(base.to_dict(), validate=False), list(variant.overrides), validate=False)
    try:
        return apply_overrides(cfg, {"train.seed": seed})
    except ConfigError as exc:
        raise ConfigError(f"variant {variant.name!r}: {exc}") from None


def _last_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _scores(run: Path, metric: str) -> tuple[float, float]:
    """The final-epoch and the best val ``metric`` of a finished run, from its ``metrics.csv``."""
    rows = [r for r in _last_rows(run / "metrics.csv") if r.get(f"val_{metric}", "") != ""]
    if not rows:
        found = sorted(k[4:] for k in _last_rows(run / "metrics.csv")[0] if k.startswith("val_"))
        raise ConfigError(f"{run} has no val {metric!r}; this task reports {', '.join(found)} (--metric)")
    values = [float(r[f"val_{metric}"]) for r in rows]
    return values[-1], max(values)


def _train_once(cfg: Config, run: Path, label: str, progress: Callable | None) -> None:
    """Train ``cfg`` into ``run`` unless it finished there; resume it if it started."""
    check_same_settings(run, cfg, whose="this compare's")
    if (run / RESULT_FILE).is_file():
        log.info("%s: finished earlier, kept (%s)", label, run)
        return
    resume = (run / "last.state.pt").is_file()
    log.info("%s: %s %s", label, "resuming" if resume else "training", run)
    wrap = (lambda it, desc: progress(it, f"{label} {desc}")) if progress is not None else None
    with log_label(label):
        result = train(cfg, run, resume=resume, progress=wrap)
    _write_text(run / RESULT_FILE, json.dumps(asdict(result), indent=2) + "\n")


def run_compare(
    base: Config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    out: str | Path,
    *,
    metric: str | None = None,
    progress: Callable[[Iterable, str], Iterable] | None = None,
) -> dict[str, Any]:
    """Train every variant with every seed into ``out`` and return the summary (also written).

    Writes ``out/compare.csv`` (one row per run), ``out/summary.json`` (see
    :func:`summarise`) and ``out/compare.png`` (per-seed scores with mean ± std).
    ``metric`` ranks by another val metric than the task's score (e.g. ``fg_iou``).
    """
    if not variants:
        raise ConfigError("a compare needs at least one --variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must differ, got {', '.join(names)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must list distinct seeds, got {list(seeds)}")
    out = Path(out)
    task = get_task(base.train.task)
    metric = metric or task.score
    # every run's config is checked before the first one trains, so a bad value fails at once
    configs = {(v.name, s): _run_config(base, v, s) for v in variants for s in seeds}
    rows = []
    for variant in variants:
        cost = None
        for seed in seeds:
            cfg, run = configs[variant.name, seed], out / variant.name / f"seed{seed}"
            _train_once(cfg, run, f"{variant.name} seed {seed}", progress)
            if cost is None:
                cost = _cost(cfg, task, out / variant.name)
            final, best = _scores(run, metric)
            rows.append({"variant": variant.name, "seed": seed, "score": final, "best_score": best, **cost})
            _write_csv(rows, out / "compare.csv")
    summary = summarise(rows, metric=metric, variants=names, seeds=list(seeds))
    _write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    from .plots import plot_compare

    plot_compare(summary, out / "compare.png", label=f"val {metric}")
    return summary


def _cost(cfg: Config, task: Task, folder: Path) -> dict[str, Any]:
    """The variant's training cost, measured once and kept in ``folder/cost.json`` (reruns report it unchanged)."""
    path = folder / COST_FILE
    if path.is_file():
        return json.loads(path.read_text())
    classes = int(read_metadata(folder / f"seed{cfg.train.seed}" / "best.safetensors")["dataset"]["out_channels"])
    cost = training_cost(cfg, task, classes)
    _write_text(path, json.dumps(cost, indent=2) + "\n")
    return cost


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    from .plots import write_csv

    write_csv(rows, path)


def _finite(value: float) -> float | None:
    """``value``, or ``None`` where it is not finite (strict JSON has no inf or NaN)."""
    return value if math.isfinite(value) else None


def summarise(rows: Sequence[dict[str, Any]], *, metric: str, variants: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per variant: cost, per-seed scores, mean ± std, and the paired difference to the first variant.

    ``scores`` are final-epoch val values in seed order, ``best_scores`` the best epoch's.
    ``std`` and ``diff_std`` are sample standard deviations (n - 1); ``t`` is the paired
    t statistic ``diff_mean / (diff_std / sqrt(n))``, ``null`` when it is undefined (one
    seed, or every difference equal); ``wins`` counts the seeds where the variant scored
    higher than the first.
    """
    by = {(r["variant"], r["seed"]): r for r in rows}
    first = [by[variants[0], s]["score"] for s in seeds]
    out = []
    for name in variants:
        runs = [by[name, s] for s in seeds]
        scores = [r["score"] for r in runs]
        diffs = [a - b for a, b in zip(scores, first)]
        n = len(scores)
        diff_std = statistics.stdev(diffs) if n > 1 else 0.0
        t = statistics.mean(diffs) / (diff_std / math.sqrt(n)) if n > 1 and diff_std > 0 else math.nan
        out.append({
            "name": name,
            "params": runs[0]["params"],
            "flops": runs[0]["flops"],
            "step_ms": runs[0]["step_ms"],
            "peak_mem_mb": runs[0]["peak_mem_mb"],
            "scores": scores,
            "best_scores": [r["best_score"] for r in runs],
            "mean": statistics.mean(scores),
            "std": statistics.stdev(scores) if n > 1 else 0.0,
            "diff_mean": statistics.mean(diffs),
            "diff_std": diff_std,
            "wins": sum(d > 0 for d in diffs),
            "t": _finite(t),
        })  # fmt: skip
    return {"metric": metric, "seeds": seeds, "variants": out}


def format_summary(summary: dict[str, Any], *, split: str = "val") -> str:
    """The summary as a Markdown table, one row per variant; ``split`` names where the scores come from."""
    from .complexity import format_count

    n = len(summary["seeds"])
    first = summary["variants"][0]["name"]
    lines = [
        f"| variant | params | FLOPs | step | {split} {summary['metric']} (mean ± std, {n} seed{'s' * (n != 1)}) | vs {first} "
        "| wins | t |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in summary["variants"]:
        t = "-" if v["t"] is None else f"{v['t']:.2f}"
        lines.append(
            f"| {v['name']} | {format_count(v['params'])} | {format_count(v['flops'])} | {v['step_ms']:.0f} ms | "
            f"{v['mean']:.4f} ± {v['std']:.4f} | {v['diff_mean']:+.4f} ± {v['diff_std']:.4f} | {v['wins']}/{n} | {t} |"
        )
    return "\n".join(lines)
