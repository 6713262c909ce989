"""``ldwseg compare``: several variants x several seeds at one budget, through ``ldwseg train``'s training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, new_output, progress, user_errors

_OWN = ("--out", "--resume", "--overwrite", "--seed")  # train options that compare sets itself


def _train_params(args: list[str]) -> dict:
    """The options of ``ldwseg train`` among ``args``, parsed by that command itself."""
    from ..errors import ConfigError

    for arg in args:
        if arg.split("=", 1)[0] in _OWN:
            raise ConfigError(
                f"{arg.split('=', 1)[0]} is set by compare itself (--out for all runs, --seeds per run, finished "
                "runs kept and unfinished ones resumed); drop it"
            )
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    with command.make_context("ldwseg compare", list(args)) as ctx:
        return dict(ctx.params)


def _seeds(text: str) -> list[int]:
    from ..errors import ConfigError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds:
        raise ConfigError(f"--seeds expects at least one seed, got {text!r}")
    return seeds


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def compare(
    ctx: typer.Context,
    variant: list[str] = typer.Option(
        ..., "--variant", help='"NAME: section.field=value ..." (repeatable); the first is the reference.'
    ),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds; every variant trains once per seed."),
    metric: str | None = typer.Option(
        None, help="Val metric to compare, a val_* column of metrics.csv (e.g. fg_iou) [default: {task.score}]."
    ),
    pair: list[str] = typer.Option(
        [],
        "--pair",
        help="REFERENCE,CANDIDATE (repeatable): the pairs to test, the first one primary, the others "
        "secondary (Holm-corrected) [default: every variant against the first].",
    ),
    primary: bool = typer.Option(
        True,
        "--primary/--no-primary",
        help="The first pair is the pre-registered primary one (not corrected); "
        "--no-primary corrects every pair together (Holm).",
    ),
    margin: float | None = typer.Option(
        None,
        min=0.0,
        help="Equivalence margin of the pairs' TOST, in the metric's units (0.01 = 1 mIoU point) "
        "[default: no equivalence test].",
    ),
    classes: str | None = typer.Option(
        None,
        help="Comma-separated classes whose IoU the table shows (iou_<name> columns without iou_, e.g. "
        "pole,signsymbol) [default: all].",
    ),
    out: Path = typer.Option(Path("runs/compare"), help="Folder for the runs, compare.csv, summary.json, compare.png."),
    report: bool = typer.Option(
        False,
        "--report",
        help="Train nothing and write nothing: summarise the seeds whose runs of every variant have finished "
        "in --out (also while a compare still trains there), marked interim when seeds are missing.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the summary as strict JSON (summary.json's content): an undefined number, "
        "such as t for one seed, is null, never NaN or Infinity.",
    ),
) -> None:
    """Train variants x seeds at one budget and compare them seed by seed (paired).

    Each pair gets the paired difference, its 95% interval, the one-sided paired t test,
    the equivalence test within --margin and a decision: gain, equivalent, loss or
    inconclusive (the rule is in ldwseg.analysis.statistics). Every other option is an option of `ldwseg train` (--epochs, --dataset, --config,
    --set, ...; see `ldwseg train --help`) and applies to all variants; each variant's
    overrides come after them. Run again with the same arguments to go on after a stop:
    finished runs are kept, an unfinished one is resumed. The same arguments with --report
    show the finished seeds' tables without training.
    """
    from ..analysis.compare import parse_pair, parse_variant, run_compare
    from ..analysis.compare_table import format_summary
    from ..errors import ConfigError
    from ..pooling.allocator import keep_freed_memory
    from .train_cmd import check_start, config_of

    variants = [parse_variant(v) for v in variant]
    seed_list = _seeds(seeds)
    pairs = [parse_pair(p, [v.name for v in variants]) for p in pair]
    cfg = config_of(_train_params(ctx.args))
    tests = {"metric": metric, "pairs": pairs, "margin": margin, "primary": primary}
    if report:
        if not out.is_dir():
            raise ConfigError(f"--report reads the runs of a compare in --out, but {out} is not a folder")
        summary = run_compare(cfg, variants, seed_list, out, train=False, **tests)
    else:
        keep_freed_memory()
        check_start(cfg, out)
        with new_output(out):
            summary = run_compare(cfg, variants, seed_list, out, progress=progress, **tests)
    if as_json:
        typer.echo(json.dumps(summary, allow_nan=False))
        return
    shown = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    typer.echo(format_summary(summary, classes=shown))
    if not report:
        typer.echo(f"wrote {out / 'compare.csv'}, {out / 'summary.json'} and {out / 'compare.png'}")
