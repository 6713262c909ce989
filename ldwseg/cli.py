"""The ``ldwseg`` command line: a thin typer layer over library functions.

Every command turns a known problem (:class:`~ldwseg.errors.LDWSegError`, a missing
file, an unreadable image) into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

import typer

from . import __version__
from .errors import LDWSegError

app = typer.Typer(
    name="ldwseg",
    help="Segmentation and reconstruction with Learnable Discrete Wavelet Pooling (LDW-Pooling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("ldwseg")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ldwseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results."),
) -> None:
    """Segmentation and reconstruction with Learnable Discrete Wavelet Pooling."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr, force=True
    )


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(fn: Callable) -> Callable:
    """Run a command, reporting known problems as one line instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LDWSegError as exc:
            _fail(str(exc))
        except FileNotFoundError as exc:
            _fail(f"file not found: {exc.filename or exc}")
        except KeyboardInterrupt:
            _fail("interrupted")

    return wrapper


def _progress(iterable: Iterable, desc: str) -> Iterable:
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, disable=not sys.stderr.isatty())


@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config (see configs/); flags below override it."),
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
    """Train a UNet (max-pool or LDW) for semantic segmentation."""
    from .config import apply_overrides, load_config
    from .seg.train import fit

    flags = {
        "data.dataset": dataset, "data.root": None if data_root is None else str(data_root), "train.epochs": epochs,
        "train.batch_size": batch_size, "optim.lr": lr, "train.wavelet_weight": wavelet_weight,
        "model.constraint": constraint, "model.down": down, "model.up": up, "train.device": device,
        "train.seed": seed, "train.amp": amp, "train.channels_last": channels_last,
        "data.download": download or None, "data.skip_bad": skip_bad or None,
    }
    cfg = apply_overrides(load_config(config, {k: v for k, v in flags.items() if v is not None}), overrides)
    out = out or Path("runs") / cfg.data.dataset
    result = fit(cfg, out, resume=resume, progress=_progress)
    typer.echo(
        f"best val mIoU {result.best_miou:.4f} (epoch {result.best_epoch + 1}); "
        f"checkpoint {Path(result.out) / 'best.safetensors'}; {result.seconds:.0f} s"
    )


@app.command()
@user_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A segmentation checkpoint (best.safetensors or last.safetensors)."),
    dataset: Optional[str] = typer.Option(None, help="Data set name [default: the one it was trained on]."),
    data_root: Optional[Path] = typer.Option(None, help="Data set folder [default: the training run's]."),
    split: Optional[str] = typer.Option(None, help="Split to evaluate [default: the validation split]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(1, min=1, help="Images per batch (padded with the ignore label)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """mIoU, per-class IoU and pixel accuracy of a checkpoint at full resolution."""
    from .seg.evaluate import evaluate_checkpoint
    from .seg.metrics import format_iou_table

    result = evaluate_checkpoint(
        checkpoint, dataset=dataset, root=data_root, split=split, device=device, batch_size=batch_size,
        progress=lambda it: _progress(it, "evaluating"),
    )
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("miou", "per_class_iou", "pixel_acc", "dataset", "split", "images")}))
        return
    typer.echo(format_iou_table(result["per_class_iou"], result["class_names"]))
    typer.echo(
        f"{result['dataset']} {result['split']} ({result['images']} images): "
        f"mIoU {result['miou']:.4f}, pixel accuracy {result['pixel_acc']:.4f}"
    )


@app.command()
@user_errors
def predict(
    checkpoint: Path = typer.Argument(..., help="A segmentation checkpoint."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(Path("predictions"), help="Folder for <name>_mask.png and <name>_overlay.png."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    overlay: bool = typer.Option(True, help="Also write colour overlays on the image."),
) -> None:
    """Colour-coded masks (dataset palette) and overlays for image files."""
    from .seg.predict import predict_images

    written = predict_images(checkpoint, images, out, device=device, with_overlay=overlay)
    typer.echo(f"wrote {len(written)} files to {out}")


@app.command()
def bench(
    repeats: int = typer.Option(15, min=1, help="Timed repetitions per case; the median is reported."),
    threads: int = typer.Option(0, min=0, help="torch threads (0: leave torch's default)."),
    quick: bool = typer.Option(False, help="Only the smallest shape, for a fast look."),
    warm: bool = typer.Option(True, help="Time with warm caches (--no-warm: other cases run in between)."),
) -> None:
    """Time LDW pooling against MaxPool2d, ConvTranspose2d, clone and pytorch_wavelets."""
    import torch

    from .bench import format_table, run_pool_benchmark

    if threads:
        torch.set_num_threads(threads)
    rows = run_pool_benchmark(repeats=repeats, quick=quick, warm=warm, progress=log.info)
    typer.echo(format_table(rows))
