"""Like-for-like comparisons: several model variants x several seeds at one budget.

Every run goes through :func:`ldwseg.tasks.train`, the training of ``ldwseg train``, with
the base config plus the variant's ``section.field=value`` overrides plus its seed, so a
score here equals that of ``ldwseg train`` with the same settings and ``--seed``. The
summary compares each variant with the first one seed by seed (a paired comparison: the
seed fixes the initialisation, the data order and the augmentation of both runs).

The statistics (:mod:`ldwseg.analysis.statistics`): for every pair, the paired
difference, its 95% interval, the one-sided paired t test, the equivalence test within
a margin and the decision; the first pair is the primary one, the others are secondary
and Holm-corrected. Lower-is-better metrics (``l1``, ``mse``, losses, errors) count a
lower score as the better one.

Runs live in ``out/<variant>/seed<k>``. A finished run leaves ``result.json`` there and
is not trained again; an unfinished one is resumed from its ``last.state.pt``, so a
killed compare, started again with the same arguments, goes on where it stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, apply_overrides
from ..engine.run_folder import RunFolder, check_same_settings
from ..engine.task import Task
from ..errors import ConfigError
from ..io.atomic import atomic_write
from ..io.weights import read_metadata
from ..provenance import environment
from ..tasks import get_task
from .compare_summary import higher_is_better, summarise
from .cost import training_cost
from .runs import run_position, train_labelled

__all__ = ["Variant", "parse_pair", "parse_variant", "run_compare"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
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


def parse_pair(text: str, variants: Sequence[str]) -> tuple[str, str]:
    """``"REF,CAND"`` as ``(reference, candidate)``, both names of ``variants``.

    >>> parse_pair("max,ldw", ["max", "ldw"])
    ('max', 'ldw')
    """
    names = [n.strip() for n in text.split(",")]
    if len(names) != 2 or names[0] == names[1] or not all(names):
        raise ConfigError(f"--pair {text!r} must name two different variants as REFERENCE,CANDIDATE, e.g. max,ldw")
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise ConfigError(
            f"--pair {text!r} names {unknown[0]!r}, not a --variant; the variants are {', '.join(variants)}"
        )
    return names[0], names[1]


def _scores(run: Path, metric: str) -> tuple[float, float, dict[str, float]]:
    """The final-epoch and the best val ``metric`` of a finished run, and its final-epoch per-class IoU
    (``val_iou_<class>`` columns, empty for a task without them), from its ``metrics.csv``."""
    rows = [r for r in _last_rows(RunFolder(run).metrics) if r.get(f"val_{metric}", "") != ""]
    if not rows:
        found = sorted(k[4:] for k in _last_rows(RunFolder(run).metrics)[0] if k.startswith("val_"))
        raise ConfigError(f"{run} has no val {metric!r}; this task reports {', '.join(found)} (--metric)")
    values = [float(r[f"val_{metric}"]) for r in rows]
    per_class = {k[len("val_iou_") :]: float(v) for k, v in rows[-1].items() if k.startswith("val_iou_") and v != ""}
    return values[-1], (max(values) if higher_is_better(metric) else min(values)), per_class


def run_compare(
    base: Config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    out: str | Path,
    *,
    metric: str | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    margin: float | None = None,
    primary: bool = True,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    train: bool = True,
) -> dict[str, Any]:
    """Train every variant with every seed into ``out`` and return the summary (also written).

    The runs train seed by seed, every variant of a seed before the next seed, so a compare
    stopped part-way holds complete pairs. Writes ``out/compare.csv`` (one row per run,
    updated after each), ``out/summary.json`` (see
    :func:`~ldwseg.analysis.compare_summary.summarise`, whose ``pairs``, ``margin`` and
    ``primary`` these are) and ``out/compare.png`` (per-seed scores with mean ± std).
    ``metric`` ranks by another val metric than the task's score (e.g. ``fg_iou``).

    ``train=False`` trains and writes nothing: the summary of the seeds whose runs of every
    variant have finished (a pair needs both), also while a compare still trains into
    ``out``. Its ``planned_seeds`` lists every seed asked for, and
    :func:`~ldwseg.analysis.compare_table.format_summary` marks a summary of fewer as
    interim: a decision rule written for all of them has not been applied yet. It raises
    a :class:`~ldwseg.errors.ConfigError` when no seed is complete.
    """
    out = Path(out)
    names, task, metric, configs = _plan(base, variants, seeds, metric)
    if not train:
        return _report(out, names, task, metric, configs, seeds, pairs=pairs, margin=margin, primary=primary)
    order = [(v.name, s) for s in seeds for v in variants]  # seed by seed: a stopped compare leaves whole pairs
    todo = [key for key in order if not RunFolder(out / key[0] / f"seed{key[1]}").result.is_file()]
    spent: list[tuple[float, int]] = []  # (seconds, epochs) of the runs this call trained
    by_run: dict[tuple[str, int], dict[str, Any]] = {}
    for name, seed in order:
        cfg, run, label = configs[name, seed], out / name / f"seed{seed}", f"{name} seed {seed}"
        if (name, seed) in todo:
            index = todo.index((name, seed))
            after = sum(configs[key].train.epochs for key in todo[index + 1 :])
            log.info("%s", run_position(index + 1, len(todo), spent, after, label=label))
        result = train_labelled(cfg, run, label=label, whose="this compare's", progress=progress)
        if (name, seed) in todo:
            spent.append((result.seconds, result.epochs_run))
        by_run[name, seed] = _row(cfg, task, out, name, metric)
        _write_csv(
            [by_run[key] for key in sorted(by_run, key=lambda k: (names.index(k[0]), k[1]))], out / "compare.csv"
        )
    rows = [by_run[v, s] for v in names for s in seeds]
    summary = summarise(
        rows, metric=metric, variants=names, seeds=list(seeds), pairs=pairs, margin=margin, primary=primary
    )
    summary["environment"] = environment()
    _write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    from .plots import plot_compare

    plot_compare(summary, out / "compare.png", label=f"val {metric}")
    return summary


def _plan(
    base: Config, variants: Sequence[Variant], seeds: Sequence[int], metric: str | None
) -> tuple[list[str], Task, str, dict[tuple[str, int], Config]]:
    """The variant names, the task, the metric and every run's config, checked before any run is read or trained."""
    if not variants:
        raise ConfigError("a compare needs at least one --variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must differ, got {', '.join(names)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must list distinct seeds, got {list(seeds)}")
    task = get_task(base.train.task)
    metric = metric or task.score
    # every run's config is checked before the first one trains, so a bad value fails at once
    configs = {(v.name, s): _run_config(base, v, s) for v in variants for s in seeds}
    return names, task, metric, configs


def _row(cfg: Config, task: Task, out: Path, name: str, metric: str) -> dict[str, Any]:
    """The row of a finished run in ``out / name / seed<k>``: its scores, its variant's cost, its per-class IoU."""
    final, best, per_class = _scores(out / name / f"seed{cfg.train.seed}", metric)
    return {
        "variant": name, "seed": cfg.train.seed, "score": final, "best_score": best, **_cost(cfg, task, out / name),
        **{f"iou_{k}": v for k, v in per_class.items()},
    }  # fmt: skip


def _report(
    out: Path,
    names: list[str],
    task: Task,
    metric: str,
    configs: dict[tuple[str, int], Config],
    seeds: Sequence[int],
    **tests: Any,
) -> dict[str, Any]:
    """The summary of ``run_compare(..., train=False)``: the complete seeds' runs, read; ``tests``: :func:`~ldwseg.analysis.compare_summary.summarise`'s."""
    finished = [s for s in seeds if all(RunFolder(out / n / f"seed{s}").result.is_file() for n in names)]
    if not finished:
        raise ConfigError(
            f"{out} holds no seed whose runs of every variant ({', '.join(names)}) have finished; run the same "
            "command without --report to train them"
        )
    rows = []
    for name in names:
        for seed in finished:
            check_same_settings(out / name / f"seed{seed}", configs[name, seed], whose="this compare's")
            rows.append(_row(configs[name, seed], task, out, name, metric))
    summary = summarise(rows, metric=metric, variants=names, seeds=finished, **tests)
    summary["planned_seeds"] = list(seeds)
    return summary


def _cost(cfg: Config, task: Task, folder: Path) -> dict[str, Any]:
    """The variant's training cost, measured once and kept in ``folder/cost.json`` (reruns report it unchanged).

    Measured on the device and in the number format the runs trained with; the row names them
    (``cost_device``, ``cost_precision``) and says whether ``peak_mem_mb`` was measured (CUDA)
    or estimated (CPU) in ``peak_mem_source`` (see :func:`~ldwseg.analysis.cost.training_cost`).
    """
    path = folder / COST_FILE
    if path.is_file():
        return json.loads(path.read_text())
    classes = int(read_metadata(RunFolder(folder / f"seed{cfg.train.seed}").best)["dataset"]["out_channels"])
    cost = training_cost(cfg, task, classes)
    log.info(
        "%s: training step %.1f ms on %s (%s), peak memory %.1f MiB (%s)", folder.name, cost["step_ms"],
        cost["cost_device"], cost["cost_precision"], cost["peak_mem_mb"], cost["peak_mem_source"],
    )  # fmt: skip
    _write_text(path, json.dumps(cost, indent=2) + "\n")
    return cost


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    from .plots import write_csv

    write_csv(rows, path)
