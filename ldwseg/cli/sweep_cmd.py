"""``ldwseg sweep`` and ``ldwseg ablate``: sets of short runs from one base config.

The base config is built as ``ldwseg train`` builds its own (:func:`.train_cmd.resolve_config`),
with :data:`SHORT_RUN_EPOCHS` epochs per run unless ``--epochs`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, new_output, progress, user_errors
from .train_cmd import check_start, resolve_config


def _floats(text: str) -> list[float]:
    from ..errors import ConfigError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--wavelet-weights expects comma-separated numbers such as 0,0.1,1, got {text!r}") from None
    if not values or min(values) < 0:
        raise ConfigError(f"--wavelet-weights expects non-negative numbers, got {text!r}")
    return values


SHORT_RUN_EPOCHS = 8
"""The epochs of each run of ``sweep`` and ``ablate`` unless ``--epochs`` says otherwise."""


def _short_runs_config(task, config, dataset, data_root, epochs, overrides):
    """The base config of the runs of ``sweep`` and ``ablate`` (:data:`SHORT_RUN_EPOCHS` unless told otherwise)."""
    flags = {"train.task": task, "data.dataset": dataset, "data.root": None if data_root is None else str(data_root),
             "train.epochs": epochs or SHORT_RUN_EPOCHS}  # fmt: skip
    return resolve_config(config, flags, overrides)


@app.command()
@user_errors
def sweep(
    task: str = typer.Option("seg", help="{choices:task}."),
    wavelet_weights: str = typer.Option("0,0.01,0.1,1,10", help="Comma-separated constraint weights (lambda)."),
    constraint: list[str] = typer.Option(["paper", "orthogonal"], help="Constraint modes (repeatable)."),
    config: Path | None = typer.Option(None, "--config", help="Base YAML config [default: none]."),
    dataset: str | None = typer.Option(None, help="Data set [default: {data.dataset}]."),
    data_root: Path | None = typer.Option(None, help="Data set folder [default: as for ldwseg train]."),
    epochs: int | None = typer.Option(None, min=1, help=f"Epochs per run [default: {SHORT_RUN_EPOCHS}]."),
    out: Path = typer.Option(Path("runs/sweep"), help="Folder for the runs, sweep.csv and sweep.png."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Any config field (repeatable) [defaults: those of ldwseg train --help]."
    ),
) -> None:
    """The trade-off map: one short run per constraint weight, task metric vs invertibility.

    Each run trains into <out>/<constraint>_w<lambda>; its epoch lines start with that
    name. Run again with the same arguments to go on after a stop: finished runs are
    kept, an unfinished one is resumed, a run folder with other settings is refused.
    """
    from ..analysis.sweep import run_sweep
    from ..pooling.allocator import keep_freed_memory
    from ..tasks import get_task

    keep_freed_memory()

    cfg = _short_runs_config(task, config, dataset, data_root, epochs, overrides)
    weights = _floats(wavelet_weights)
    check_start(cfg, out)
    with new_output(out):
        rows = run_sweep(cfg, out, weights=weights, constraints=constraint, progress=progress)
    score = get_task(cfg.train.task).score
    typer.echo(f"{'constraint':12s} {'lambda':>8s} {score:>8s} {'pool PSNR':>10s} {'c. loss':>10s} {'PR error':>9s}")
    for r in rows:
        typer.echo(
            f"{r['constraint']:12s} {r['wavelet_weight']:8g} {r[score]:8.4f} {r['roundtrip_psnr']:10.2f} "
            f"{r['wavelet_loss']:10.3g} {r['pr_error']:9.3g}"
        )
    typer.echo(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")


@app.command()
@user_errors
def ablate(
    table: str = typer.Argument(
        ...,
        help="table3: LDW with and without energy attention, and max pooling (3 runs: the attention gates the "
        "LDW subbands, so max pooling has none to gate); table6: initial filters that meet the constraints "
        "('pretrain') or not x L_wavelet on or off (4 runs).",
    ),
    task: str = typer.Option("seg", help="{choices:task}."),
    config: Path | None = typer.Option(None, "--config", help="Base YAML config [default: none]."),
    dataset: str | None = typer.Option(None, help="Data set [default: {data.dataset}]."),
    data_root: Path | None = typer.Option(None, help="Data set folder [default: as for ldwseg train]."),
    epochs: int | None = typer.Option(None, min=1, help=f"Epochs per run [default: {SHORT_RUN_EPOCHS}]."),
    out: Path = typer.Option(Path("runs/ablation"), help="Folder for the runs, in <out>/<table>/, and <table>.csv."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Any config field (repeatable) [defaults: those of ldwseg train --help]."
    ),
) -> None:
    """Reproduce the paper's ablation tables 3 and 6 on the given data.

    Each setting trains into its own folder; its epoch lines start with the setting's
    name. Run again with the same arguments to go on after a stop: finished runs are
    kept, an unfinished one is resumed, a run folder with other settings is refused.
    """
    from ..analysis.sweep import run_ablation
    from ..pooling.allocator import keep_freed_memory
    from ..tasks import get_task

    keep_freed_memory()

    cfg = _short_runs_config(task, config, dataset, data_root, epochs, overrides)
    check_start(cfg, out)
    with new_output(out):
        rows = run_ablation(cfg, out / table, table=table, progress=progress)
    score = get_task(cfg.train.task).score
    for r in rows:
        typer.echo(f"{r['setting']:28s} {score} {r[score]:.4f}  PR error {r['pr_error']:.3g}")
    typer.echo(f"wrote {out / table / (table + '.csv')}")
