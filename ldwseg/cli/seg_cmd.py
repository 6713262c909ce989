"""``ldwseg evaluate`` and ``ldwseg predict`` for segmentation checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..inference.tiling import DEFAULT_TILE
from ..io import DEFAULT_MAX_PIXELS
from .app import app, check_device, check_output, new_output, progress, user_errors

AMP_HELP = (
    "Autocast of the network: off (float32), bf16 or fp16 (CUDA only) [default: the run's train.amp, as its "
    "validation ran; a run's fp16 runs in float32 off CUDA]."
)


@app.command()
@user_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A segmentation checkpoint (best.safetensors or last.safetensors)."),
    dataset: str | None = typer.Option(None, help="Data set name [default: the one it was trained on]."),
    data_root: Path | None = typer.Option(None, help="Data set folder [default: the training run's]."),
    split: str | None = typer.Option(
        None, help="Split to evaluate [default: the run's validation split, its data.val_split]."
    ),
    device: str = typer.Option("auto", callback=check_device, help="auto, cpu, cuda or cuda:N."),
    batch_size: int | None = typer.Option(
        None,
        min=1,
        help="Images per batch [default: the run's train.val_batch_size, as its validation]; only images of one "
        "size share a batch, so other sizes give the same scores up to float rounding.",
    ),
    eval_scale: float | None = typer.Option(
        None,
        min=0.0,
        help="Resize each image by this factor before the network; the logits are resized back and "
        "scored at the label's size [default: the run's data.eval_scale, as its validation ran].",
    ),
    tta: str | None = typer.Option(
        None,
        help="Test-time augmentation: 'flip' and/or factors of the eval scale, e.g. flip or flip,0.75,1,1.25; "
        "the class probabilities are averaged [default: none].",
    ),
    tile: int = typer.Option(
        0,
        min=0,
        help="Run each image in overlapping windows of at most NxN pixels, as predict does [default: 0, whole images].",
    ),
    skip_bad: bool = typer.Option(False, help="Leave out unusable samples instead of failing (they are listed)."),
    amp: str | None = typer.Option(None, help=AMP_HELP),
    report: Path | None = typer.Option(
        None,
        help="Also write per_class.csv (IoU, accuracy, precision, pixels per class), confusion.csv and "
        "confusion.png (row-normalised) into this folder [default: none].",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one strict JSON object: miou, pixel_acc, mean_acc, per_class_iou / per_class_acc / "
        "per_class_precision {class name: score}, confusion (pixels, [target][prediction]), fg_iou and dice "
        "(2 classes), class_names, dataset, split, eval_scale, tta, tile, amp, batch_size, images, skipped. An undefined score "
        "(e.g. the IoU of a class absent from targets and predictions) is null.",
    ),
) -> None:
    """mIoU, per-class IoU and pixel accuracy of a checkpoint, counted on the labels at their own size.

    For 2-class data (class 1 = foreground) also the foreground IoU and Dice (F1); both are
    1.0 when neither the targets nor the predictions hold any foreground.
    """
    from ..inference.tta import parse_tta
    from ..seg.evaluate import evaluate_checkpoint, json_report
    from ..seg.metrics import format_iou_table
    from ..seg.report import write_report

    if report is not None:
        check_output(report, folder=True, option="--report")
    result = evaluate_checkpoint(
        checkpoint, dataset=dataset, root=data_root, split=split, device=device, batch_size=batch_size,
        skip_bad=skip_bad, eval_scale=eval_scale, amp=amp, tta=parse_tta(tta), tile=tile,
        progress=lambda it: progress(it, "evaluating"),
    )  # fmt: skip
    if report is not None:
        with new_output(report):
            written = write_report(result, report)
        if not as_json:
            typer.echo(f"wrote {', '.join(str(p) for p in written)}")
    if as_json:
        typer.echo(json.dumps(json_report(result), allow_nan=False))
        return
    typer.echo(format_iou_table(result["per_class_iou"], result["class_names"]))
    skipped = f", {result['skipped']} skipped" if result["skipped"] else ""
    foreground = f", foreground IoU {result['fg_iou']:.4f}, Dice {result['dice']:.4f}" if "dice" in result else ""
    typer.echo(
        f"{result['dataset']} {result['split']} ({result['images']} images{skipped}, eval scale "
        f"{result['eval_scale']:g}{'' if result['tta'] == 'none' else ', tta ' + result['tta']}): "
        f"mIoU {result['miou']:.4f}, pixel accuracy {result['pixel_acc']:.4f}{foreground}"
    )


@app.command()
@user_errors
def predict(
    checkpoint: Path = typer.Argument(..., help="A segmentation checkpoint."),
    images: list[Path] = typer.Argument(..., help="Image files, or folders of them (their image files)."),
    out: Path = typer.Option(Path("predictions"), help="Folder for <name>_mask.png and <name>_overlay.png."),
    device: str = typer.Option("auto", callback=check_device, help="auto, cpu, cuda or cuda:N."),
    overlay: bool = typer.Option(
        True,
        help="Also write the image with the class colours blended in (background untinted), above a legend "
        "of the classes it shows.",
    ),
    tile: int = typer.Option(
        DEFAULT_TILE, min=0, help="Run larger images in overlapping tiles of at most NxN pixels; 0 = whole image."
    ),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, min=1, help="Refuse images with more pixels, before decoding them (about 35 bytes each)."
    ),
    amp: str | None = typer.Option(None, help=AMP_HELP),
) -> None:
    """Colour-coded masks (dataset palette) and overlays with a legend for image files or folders.

    A mask is a label map of the image's size (pixel value = class index, shown in the
    data set's colours); the overlay names the classes in a legend strip below the image.
    """
    from ..seg.predict import predict_images

    check_output(out, folder=True)
    with new_output(out):
        written = predict_images(
            checkpoint, images, out, device=device, with_overlay=overlay, tile=tile, max_pixels=max_pixels, amp=amp,
            progress=lambda runs: progress(runs, "tiles"),
        )  # fmt: skip
    typer.echo(f"wrote {len(written)} files to {out}")
