"""``ldwseg train``, ``ldwseg sweep`` and ``ldwseg ablate``: training runs from one config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, check_output, new_output, progress, user_errors


def resolve_config(config: Optional[Path], flags: dict, overrides: list[str]):
    """Defaults < task defaults < ``--config`` file < flags < ``--set`` overrides."""
    from ..config import apply_overrides
    from ..tasks import load_config

    cfg = load_config(config, {k: v for k, v in flags.items() if v is not None}, validate=False)
    return apply_overrides(cfg, overrides)


_FLAG_KEYS = {
    "task": "train.task", "dataset": "data.dataset", "data_root": "data.root", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "optim.lr", "wavelet_weight": "train.wavelet_weight",
    "constraint": "model.constraint", "down": "model.down", "up": "model.up", "device": "train.device",
    "seed": "train.seed", "amp": "train.amp", "channels_last": "train.channels_last", "download": "data.download",
    "skip_bad": "data.skip_bad",
}  # fmt: skip
"""The config field each option of ``ldwseg train`` sets (``--set`` sets any)."""


def config_of(params: dict):
    """The config that ``ldwseg train`` runs for its parsed options ``params`` (also used by ``compare``)."""
    flags = {key: params.get(name) for name, key in _FLAG_KEYS.items()}
    if flags["data.root"] is not None:
        flags["data.root"] = str(flags["data.root"])
    for switch in ("data.download", "data.skip_bad"):  # a switch left off keeps the config's value
        flags[switch] = flags[switch] or None
    return resolve_config(params.get("config"), flags, list(params.get("overrides") or []))


def default_out(cfg) -> Path:
    return Path("runs") / (cfg.data.dataset if cfg.train.task == "seg" else f"recon-{cfg.data.dataset}")


def check_start(cfg, out: Path) -> None:
    """Refuse an unusable ``out``, or a device or precision this machine lacks, before any file is read or written."""
    from ..engine.distributed import check_precision, resolve_device

    check_output(out, folder=True)
    check_precision(resolve_device(cfg.train.device), cfg.train.amp)


@app.command()
@user_errors
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config (see configs/); flags below override it."),
    task: Optional[str] = typer.Option(None, help="seg (segmentation, the default) or recon (autoencoding)."),
    dataset: Optional[str] = typer.Option(None, help="voc12, voc12-aug, camvid, folder or synthetic (the default)."),
    data_root: Optional[Path] = typer.Option(None, help="Folder of the data set (VOCdevkit for voc12)."),
    out: Optional[Path] = typer.Option(None, help="Output folder for checkpoints and logs [default: runs/<dataset>]."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Batch size per process."),
    lr: Optional[float] = typer.Option(None, help="Learning rate."),
    wavelet_weight: Optional[float] = typer.Option(None, min=0.0, help="Weight of the constraint loss (lambda)."),
    constraint: Optional[str] = typer.Option(None, help="paper, orthogonal or lattice."),
    down: Optional[str] = typer.Option(None, help="Downsampler: maxpool or ldw."),
    up: Optional[str] = typer.Option(None, help="Upsampler: deconv, ldw or ldw-detail."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    amp: Optional[str] = typer.Option(None, help="Mixed precision: off, bf16 or fp16."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="NHWC memory format."),
    download: bool = typer.Option(False, help="Download the data set first (voc12)."),
    skip_bad: bool = typer.Option(False, help="Skip unreadable files instead of failing (they are listed)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from last.safetensors."),
    overrides: list[str] = typer.Option([], "--set", help="Any config field: --set model.base_width=32 (repeatable)."),
) -> None:
    """Train a UNet (max-pool or LDW) for segmentation, or as an autoencoder (--task recon)."""
    from ..engine.allocator import keep_freed_memory
    from ..tasks import get_task
    from ..tasks import train as train_run

    keep_freed_memory()

    cfg = config_of(ctx.params)
    out = out or default_out(cfg)
    check_start(cfg, out)
    with new_output(out):
        result = train_run(cfg, out, resume=resume, progress=progress)
    label = get_task(cfg.train.task).label
    skipped = f"; skipped {result.skipped} bad samples (listed in the log)" if result.skipped else ""
    typer.echo(
        f"best val {label} {result.best_score:.4f} (epoch {result.best_epoch + 1}); "
        f"checkpoint {Path(result.out) / 'best.safetensors'}; {result.seconds:.0f} s{skipped}"
    )


def _floats(text: str) -> list[float]:
    from ..errors import ConfigError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--wavelet-weights expects comma-separated numbers such as 0,0.1,1, got {text!r}") from None
    if not values or min(values) < 0:
        raise ConfigError(f"--wavelet-weights expects non-negative numbers, got {text!r}")
    return values


def _short_runs_config(task, config, dataset, data_root, epochs, overrides):
    """The base config of the runs of ``sweep`` and ``ablate`` (8 epochs unless told otherwise)."""
    flags = {"train.task": task, "data.dataset": dataset, "data.root": None if data_root is None else str(data_root),
             "train.epochs": epochs or 8}  # fmt: skip
    return resolve_config(config, flags, overrides)


@app.command()
@user_errors
def sweep(
    task: str = typer.Option("seg", help="seg or recon."),
    wavelet_weights: str = typer.Option("0,0.01,0.1,1,10", help="Comma-separated constraint weights (lambda)."),
    constraint: list[str] = typer.Option(["paper", "orthogonal"], help="Constraint modes (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Base YAML config."),
    dataset: Optional[str] = typer.Option(None, help="Data set [default: the task's embedded one]."),
    data_root: Optional[Path] = typer.Option(None, help="Data set folder."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Epochs per run [default: 8]."),
    out: Path = typer.Option(Path("runs/sweep"), help="Folder for the runs, sweep.csv and sweep.png."),
    overrides: list[str] = typer.Option([], "--set", help="Any config field (repeatable)."),
) -> None:
    """The trade-off map: one short run per constraint weight, task metric vs invertibility."""
    from ..analysis.sweep import run_sweep
    from ..engine.allocator import keep_freed_memory
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
    table: str = typer.Argument(..., help="table3 (LDW x energy attention) or table6 (pretrain x L_wavelet)."),
    task: str = typer.Option("seg", help="seg or recon."),
    config: Optional[Path] = typer.Option(None, "--config", help="Base YAML config."),
    dataset: Optional[str] = typer.Option(None, help="Data set [default: the task's embedded one]."),
    data_root: Optional[Path] = typer.Option(None, help="Data set folder."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Epochs per run [default: 8]."),
    out: Path = typer.Option(Path("runs/ablation"), help="Folder for the runs and <table>.csv."),
    overrides: list[str] = typer.Option([], "--set", help="Any config field (repeatable)."),
) -> None:
    """Reproduce the paper's ablation tables 3 and 6 on the given data."""
    from ..analysis.sweep import run_ablation
    from ..engine.allocator import keep_freed_memory
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
