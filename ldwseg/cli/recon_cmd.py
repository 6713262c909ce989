"""``ldwseg reconstruct`` and ``ldwseg filters``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from ..inference.tiling import DEFAULT_TILE
from ..io import DEFAULT_MAX_PIXELS
from ..recon.reconstruct import DEFAULT_LEVELS, DEFAULT_WAVELET
from .app import app, check_device, check_output, progress, user_errors


def _db(value: float) -> str:
    return "inf (exact)" if math.isinf(value) else f"{value:.2f} dB"


def _check_wavelet(value: str | None) -> str | None:
    """Callback of ``--wavelet``: the round trip needs the fixed filters of a named orthogonal wavelet."""
    if value is None:
        return None
    from ..errors import ConfigError
    from ..pooling.multilevel import check_fixed_wavelet

    try:
        check_fixed_wavelet(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command()
@user_errors
def reconstruct(
    image: Path = typer.Argument(..., help="PNG, JPEG, TIFF, ...: gray, RGB or RGBA, 8 or 16 bit."),
    checkpoint: Path | None = typer.Option(
        None, help="A reconstruction checkpoint [default: none: the pure LDW round trip]."
    ),
    out: Path | None = typer.Option(
        None,
        help="Output file [default: <name>_recon.png beside the input; <name>_ae.png with --checkpoint; "
        "TIFF inputs keep .tif].",
    ),
    levels: int | None = typer.Option(
        None, min=1, help=f"Levels of the round trip without --checkpoint [default: {DEFAULT_LEVELS}]."
    ),
    wavelet: str | None = typer.Option(
        None,
        callback=_check_wavelet,
        help=f"Wavelet of the round trip without --checkpoint [default: {DEFAULT_WAVELET}].",
    ),
    device: str = typer.Option("auto", callback=check_device, help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print one strict JSON object {"psnr", "exact", "ssim", "output"}: an exact reconstruction has '
        '"psnr": null and "exact": true (its PSNR is infinite, which strict JSON cannot write).',
    ),
    tile: int = typer.Option(
        DEFAULT_TILE,
        min=0,
        help="Run larger images in tiles of at most NxN pixels (overlapping with --checkpoint); 0 = whole image.",
    ),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, min=1, help="Refuse images with more pixels, before decoding them (about 35 bytes each)."
    ),
) -> None:
    """Reconstruct an image at its own size; print PSNR and SSIM against the input."""
    from ..inference.tiling import TileOptions
    from ..recon.reconstruct import reconstruct_image

    if out is not None:
        check_output(out, folder=False)
    result = reconstruct_image(
        image, checkpoint=checkpoint, out=out, levels=levels, wavelet=wavelet, device=device, tiles=TileOptions(tile),
        max_pixels=max_pixels, progress=lambda runs: progress(runs, "tiles"),
    )  # fmt: skip
    if as_json:
        exact = math.isinf(result["psnr"])
        report = {"psnr": None if exact else result["psnr"], "exact": exact, "ssim": result["ssim"],
                  "output": result["output"]}  # fmt: skip
        typer.echo(json.dumps(report, allow_nan=False))
        return
    typer.echo(f"PSNR {_db(result['psnr'])}, SSIM {result['ssim']:.6f} -> {result['output']}")


@app.command()
@user_errors
def filters(
    checkpoint: Path = typer.Argument(..., help="A segmentation or reconstruction checkpoint."),
    out: Path | None = typer.Option(
        None,
        help="PNG of taps, their change and frequency responses [default: <ckpt>_filters.png beside the "
        "checkpoint; none with --json].",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print strict JSON instead of the table: {"checkpoint", "task", "pools": [{"name", "constraint", '
        '"wavelet", "kernel_size", "low", "high", "initial_low", "initial_high", "constraint_terms", '
        '"wavelet_loss", "pr_error", "max_change"}]}; a non-finite number is null. Writes the PNG only with --out.',
    ),
) -> None:
    """Plot each learned pool's filters next to the initial wavelet; print constraint terms and PR error.

    The table gives, per pool, the largest change of a tap from its initial value and the
    terms of that pool's own constraint ("-" where a term is not the pool's).
    """
    from ..analysis.filter_report import format_reports, pool_reports, report_json
    from ..engine.checkpoints import load_run_model

    if out is not None:
        check_output(out, folder=False)
    model, meta, _ = load_run_model(checkpoint)
    reports = pool_reports(model)
    if as_json:
        pools = [report_json(r) for r in reports]
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "task": meta["task"], "pools": pools}, allow_nan=False))
        if out is not None and reports:
            typer.echo(f"wrote {_plot(reports, out)}", err=True)
        return
    if not reports:
        typer.echo(f"{checkpoint} has no LDW pools (a max-pool model); nothing to plot")
        return
    typer.echo(format_reports(reports))
    typer.echo(f"wrote {_plot(reports, out or checkpoint.with_name(checkpoint.stem + '_filters.png'))}")


def _plot(reports: list, out: Path) -> Path:
    """Write the PNG of :func:`~ldwseg.analysis.plots.plot_filters`; matplotlib loads only when one is asked for."""
    from ..analysis.plots import plot_filters

    return plot_filters(reports, out)
