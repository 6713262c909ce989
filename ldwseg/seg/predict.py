"""Predict segmentation masks for image files: palette-coded masks and overlays with a legend.

A mask is a label map (pixel value = class index, shown in the data set's colours by any
image viewer, as VOC's ``SegmentationClass``), of the input's size. An overlay blends the
class colours into the image, leaves the background class as it is, and has a legend
strip below it: a swatch and the name of each class it shows (:func:`overlay_with_legend`).

Images larger than a tile run through the model in overlapping windows
(:func:`~ldwseg.inference.tiling.apply_tiled`), each reduced to ``uint8`` class labels at once, so
the per-class logits of a whole large image never exist; images above the pixel limit
are refused before they are decoded, and outputs are written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from ..datasets import IGNORE_INDEX, colorize, eval_transform, normalization, overlay, read_channels
from ..datasets.reading import IMAGE_SUFFIXES
from ..engine.checkpoints import load_run_model, stored_palette
from ..engine.distributed import inference_amp, resolve_device
from ..engine.precision import Precision
from ..errors import DataError
from ..inference.scale import scaled_logits
from ..inference.tiling import DEFAULT_MARGIN, DEFAULT_TILE, apply_tiled, check_tiling
from ..io import DEFAULT_MAX_PIXELS, load_rgb8, write_pil_image
from ..io.pixels import BLOCK_ROWS
from ..models.build import input_multiple

__all__ = ["background_label", "image_files", "legend_strip", "overlay_with_legend", "predict_images", "window_labels"]

log = logging.getLogger(__name__)

LEGEND_INK = (0, 0, 0)
LEGEND_PAPER = (255, 255, 255)
"""The legend's text and background colours."""


def window_labels(
    model: nn.Module,
    device: torch.device,
    *,
    scale: float = 1.0,
    amp: str = "off",
    normalise: tuple[Sequence[float], Sequence[float], float] | None = None,
) -> Callable[[Tensor], Tensor]:
    """Map a ``(1, C, h, w)`` window of an image as read (uint8 RGB, or float32 for other channel counts) to
    its ``(1, 1, h, w)`` uint8 class labels, the network run on the window resized by ``scale`` and its logits
    resized back (:func:`~ldwseg.inference.scale.scaled_logits`), under ``amp`` autocast (``off``, ``bf16``,
    ``fp16``); the labels are the argmax of the logits as float32, as :func:`~ldwseg.seg.evaluate.evaluate`
    scores them. ``normalise`` is ``(mean, std, max_value)`` (:func:`~ldwseg.datasets.normalization`),
    by default RGB's."""
    mean, std, top = normalise if normalise is not None else normalization(3)
    transform = eval_transform(mean=mean, std=std, max_value=top)
    precision = Precision(device, amp)

    def run(window: Tensor) -> Tensor:
        pixels = np.ascontiguousarray(window[0].permute(1, 2, 0).numpy())
        image, _ = transform(pixels, np.zeros(pixels.shape[:2], dtype=np.int64))
        with precision.autocast():
            logits = scaled_logits(model, precision.inputs(image.unsqueeze(0)), scale=scale)
        # argmax over a contiguous last dimension: several times faster on CPU than over dim 1
        labels = logits.float().permute(0, 2, 3, 1).contiguous().argmax(-1)
        return labels.unsqueeze(1).to(device="cpu", dtype=torch.uint8)

    return run


def _read(path: Path, channels: int, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels the network reads, uint8 RGB to draw the overlay on)`` of an image file.

    RGB images are read as 8-bit RGB (:func:`~ldwseg.io.load_rgb8`); other channel counts
    exactly (:func:`~ldwseg.datasets.read_channels`), drawn as their first channel in gray
    (the first three as RGB for three or more).
    """
    if channels == 3:
        rgb = load_rgb8(path, max_pixels=max_pixels)
        return rgb, rgb
    pixels = read_channels(path, channels, max_pixels=max_pixels)
    shown = pixels[..., :3] if channels > 3 else np.repeat(pixels[..., :1], 3, axis=2)
    return pixels, (np.clip(shown, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def background_label(class_names: list[str]) -> int | None:
    """The label that overlays leave untinted: the class named "background", else label 0 of
    two-class data (class 1 is the foreground), else none."""
    lowered = [name.lower() for name in class_names]
    if "background" in lowered:
        return lowered.index("background")
    return 0 if len(class_names) == 2 else None


def legend_strip(entries: list[tuple[str, tuple[int, int, int] | None]], width: int) -> np.ndarray:
    """A strip ``width`` pixels wide naming each entry next to a swatch of its colour, in rows as needed.

    Args:
        entries: ``(name, colour)`` pairs; a ``None`` colour draws an empty swatch and
            adds "(untinted)" to the name (the background of an overlay).
        width: the strip's width (the image's); the font grows with it, so the legend
            reads at the size the image is viewed.

    Returns:
        ``(h, width, 3)`` ``uint8``: :data:`LEGEND_INK` on :data:`LEGEND_PAPER`, each
        swatch a square of its colour exactly (with a grey outline).
    """
    size = int(np.clip(width // 60, 11, 48))
    font = ImageFont.load_default(size=size)
    pad, gap = max(size // 2, 3), max(size // 3, 2)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [name if colour is not None else f"{name} (untinted)" for name, colour in entries]
    widths = [size + gap + int(probe.textlength(label, font=font)) for label in labels]
    rows: list[list[int]] = [[]]  # entry indices per row, wrapped at the width
    used = pad
    for i, w in enumerate(widths):
        if rows[-1] and used + w > width - pad:
            rows.append([])
            used = pad
        rows[-1].append(i)
        used += w + 2 * pad
    line = size + pad
    image = Image.new("RGB", (width, pad + line * len(rows)), LEGEND_PAPER)
    draw = ImageDraw.Draw(image)
    for r, members in enumerate(rows):
        x, y = pad, pad + r * line
        for i in members:
            colour = entries[i][1]
            draw.rectangle((x, y, x + size - 1, y + size - 1), fill=colour or LEGEND_PAPER, outline=(128, 128, 128))
            if colour is not None:  # the outline must not change the swatch's own colour inside
                draw.rectangle((x + 1, y + 1, x + size - 2, y + size - 2), fill=colour)
            draw.text((x + size + gap, y + size / 2), labels[i], fill=LEGEND_INK, font=font, anchor="lm")
            x += widths[i] + 2 * pad
    return np.asarray(image)


def overlay_with_legend(
    rgb: np.ndarray, mask: np.ndarray, palette: np.ndarray, class_names: list[str], *, background: int | None
) -> np.ndarray:
    """``rgb`` with the class colours of ``mask`` blended in, above a legend of the classes it shows.

    Args:
        rgb: ``(H, W, 3)`` ``uint8`` image.
        mask: ``(H, W)`` labels in ``[0, K)`` or 255 (ignored: left as it is).
        palette: ``(K, 3)`` class colours.
        class_names: ``K`` names, in label order.
        background: a label whose pixels stay as they are (see :func:`background_label`), or ``None``.

    Returns:
        ``(H + h, W, 3)`` ``uint8``: :func:`~ldwseg.datasets.overlay` of the image (a
        block of rows at a time: it blends in float32), then the :func:`legend_strip` of
        the classes present, in label order.
    """
    height = rgb.shape[0]
    counts = sum(
        np.bincount(mask[row : row + BLOCK_ROWS].ravel(), minlength=256) for row in range(0, height, BLOCK_ROWS)
    )
    present = np.flatnonzero(counts[: len(palette)])  # a block at a time: bincount makes int64 copies
    entries = [(class_names[k], None if k == background else tuple(int(v) for v in palette[k])) for k in present]
    strip = legend_strip(entries, rgb.shape[1])
    blended = np.empty((height + strip.shape[0], *rgb.shape[1:]), dtype=np.uint8)
    for row in range(0, height, BLOCK_ROWS):
        rows = slice(row, min(row + BLOCK_ROWS, height))
        labels = mask[rows] if background is None else np.where(mask[rows] == background, IGNORE_INDEX, mask[rows])
        blended[rows] = overlay(rgb[rows], labels, palette)
    blended[height:] = strip
    return blended


def _class_names(meta: dict, num_classes: int) -> list[str]:
    """The checkpoint's class names; ``class <k>`` where it stores no usable list."""
    names = meta.get("dataset", {}).get("class_names")
    if isinstance(names, list) and len(names) >= num_classes and all(isinstance(n, str) for n in names):
        return names[:num_classes]
    return [f"class {k}" for k in range(num_classes)]


def image_files(images: list[str | Path], *, out_dir: str | Path | None = None) -> list[Path]:
    """The files of ``images``: each file as given, each folder as its image files (sorted, not its subfolders).

    Raises:
        DataError: a folder holds no image, or is ``out_dir`` (the predictions would
            be read back as inputs on the next run).
    """
    paths: list[Path] = []
    for item in map(Path, images):
        if not item.is_dir():
            paths.append(item)
            continue
        if out_dir is not None and item.resolve() == Path(out_dir).resolve():
            raise DataError(f"--out {out_dir} is the input folder {item}; write the predictions to another folder")
        found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise DataError(
                f"folder {item} holds no images (files ending in {', '.join(IMAGE_SUFFIXES)}); "
                "give image files or a folder of them"
            )
        paths += found
    return list(dict.fromkeys(paths))  # each file once


def _check_distinct_outputs(paths: list[Path]) -> None:
    """Two inputs with the same name (``a/x.png``, ``b/x.jpg``) would write the same output files."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise DataError(
                f"{seen[path.stem]} and {path} would both be written as {path.stem}_mask.png; "
                "predict them into separate --out folders, or rename one"
            )
        seen[path.stem] = path


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    images: list[str | Path],
    out_dir: str | Path,
    *,
    device: str = "auto",
    with_overlay: bool = True,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    amp: str | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> list[Path]:
    """Write ``<stem>_mask.png`` (palette PNG of class indices) and ``<stem>_overlay.png`` (with a legend).

    Every image is read (and checked) before anything is written, and each file is
    written to a temporary file that is then renamed, so a failure never leaves a partial
    output.

    Args:
        checkpoint: a segmentation checkpoint.
        images: image files (gray, RGB, RGBA, palette, 8 or 16 bit), read as the data sets
            read them (:func:`~ldwseg.io.load_rgb8`), or folders of them (:func:`image_files`).
        out_dir: the output folder, created if missing.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        with_overlay: also write the colour overlays (:func:`overlay_with_legend`): the
            image with the class colours blended in, the background class untinted, and a
            legend strip below it (so ``H`` plus the strip's rows high).
        tile: images with a side longer than this run in overlapping windows of at most
            ``tile x tile`` pixels, aligned on the model's
            :func:`~ldwseg.models.build.input_multiple` (``2**depth`` for the UNet, the
            encoder's output stride for an smp arch); 0 runs every image whole. The model's
            energy attention gates are those of the whole image (one extra pass over the
            windows per attention module, see :mod:`ldwseg.inference.tiling`).
        margin: context kept around each window's interior, in pixels.
        max_pixels: images with more pixels are refused before decoding
            (:data:`~ldwseg.io.DEFAULT_MAX_PIXELS`).
        amp: the network's autocast, ``off``, ``bf16`` or ``fp16``; ``None`` takes the run's
            ``train.amp``, as its validation and ``evaluate`` do
            (:func:`~ldwseg.engine.distributed.inference_amp`).
        progress: shows the model runs of a tiled image (see :func:`~ldwseg.inference.tiling.apply_tiled`).

    The network runs at the checkpoint's ``data.eval_scale`` and in its precision, as its
    validation did (each window resized by it, the logits resized back): a tiled image then
    equals the whole image's prediction up to the resizing at the window borders, and a
    whole image's mask is the argmax that ``evaluate`` scores.

    Returns:
        The files written.

    Raises:
        DataError: an unreadable image, one above ``max_pixels``, a folder without images,
            or a failed write.
        ConfigError: a bad ``tile``, ``margin``, ``max_pixels`` or ``amp``.
        CheckpointError: the checkpoint is unusable or not a segmentation checkpoint.
    """
    dev = resolve_device(device)
    model, meta, cfg = load_run_model(checkpoint, dev, task="seg")
    amp = inference_amp(dev, cfg.train.amp, amp)
    multiple = input_multiple(model)
    check_tiling(tile, margin, multiple)
    palette = stored_palette(checkpoint, meta)
    class_names = _class_names(meta, int(meta["dataset"]["num_classes"]))
    palette = palette[: len(class_names)]
    paths = image_files(images, out_dir=out_dir)
    _check_distinct_outputs(paths)
    channels = cfg.model.in_channels
    for path in paths:  # every file is read (checked) before anything is written; one at a time in memory
        _read(path, channels, max_pixels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = meta["dataset"]
    normalise = normalization(channels, record.get("mean", cfg.data.mean), record.get("std", cfg.data.std))
    labels = window_labels(model, dev, scale=cfg.data.eval_scale, amp=amp, normalise=normalise)
    written: list[Path] = []
    for path in paths:
        pixels, rgb = _read(path, channels, max_pixels)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        mask = apply_tiled(labels, x, tile=tile, margin=margin, multiple=multiple, model=model, progress=progress)[
            0, 0
        ].numpy()
        mask_path = out_dir / f"{path.stem}_mask.png"
        write_pil_image(mask_path, colorize(mask, palette), "PNG")
        written.append(mask_path)
        if with_overlay:
            over_path = out_dir / f"{path.stem}_overlay.png"
            shown = overlay_with_legend(rgb, mask, palette, class_names, background=background_label(class_names))
            write_pil_image(over_path, Image.fromarray(shown), "PNG")
            written.append(over_path)
        log.info("%s -> %s", path, mask_path)
    return written
