"""``ldwseg export``: a checkpoint's model as an ONNX file, checked with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..engine.checkpoints import TASK_NAMES
from ..inference.export import CHECK_SIZE, EXPORTERS, TOLERANCE
from .app import app, check_output, user_errors


@app.command("export")
@user_errors
def export_command(
    checkpoint: Path = typer.Argument(..., help="A segmentation or reconstruction checkpoint (best.safetensors, ...)."),
    out: Path = typer.Argument(..., help="The ONNX file to write (model.onnx)."),
    exporter: str | None = typer.Option(
        None,
        help=f"ONNX exporter: {' or '.join(EXPORTERS)} [default: {EXPORTERS[0]}: 0.5 s against about 30 s for "
        "the default UNet, and exact for every LDW filter length].",
    ),
    opset: int | None = typer.Option(None, help="ONNX opset [default: the exporter's]."),
    size: tuple[int, int] | None = typer.Option(
        None, metavar="H W", help="Example input size; the file accepts any size [default: the run's crop size]."
    ),
    check_size: tuple[int, int] = typer.Option(
        CHECK_SIZE, metavar="H W", help="The second, odd size at which the file is compared with PyTorch."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object: output, exporter, opset, task, input, output_name, export_size, "
        "checks [{shape, max_abs_error}], max_abs_error, output_scale, limit, seconds, bytes.",
    ),
) -> None:
    """Export the whole model with dynamic batch, height and width, and check the file.

    onnxruntime runs the file at the export size and at an odd size, and its output is
    compared with the model's; if the largest error exceeds 1e-4 x the output
    scale (the largest |output|), nothing is written.
    """
    from ..inference.export import export_onnx

    check_output(out, folder=False)
    result = export_onnx(checkpoint, out, exporter=exporter, opset=opset, size=size, check_size=check_size)
    if as_json:
        typer.echo(json.dumps(result, allow_nan=False))
        return
    typer.echo(
        f"wrote {result['output']} ({result['exporter']} exporter, opset {result['opset']}, "
        f"{result['bytes'] / 2**20:.1f} MiB) in {result['seconds']:.1f} s: {TASK_NAMES[result['task']]} model, "
        f"input {result['input']!r} (batch, 3, height, width), output {result['output_name']!r}"
    )
    errors = ", ".join(f"{c['max_abs_error']:.2e} at {tuple(c['shape'])}" for c in result["checks"])
    typer.echo(f"max abs error {errors} (limit {result['limit']:.2e} = {TOLERANCE:g} x output scale "
               f"{result['output_scale']:.3g})")  # fmt: skip
