"""A small generated data set in the VOC layout, for tests and quick experiments.

Each image has a textured background, 4-9 textured filled shapes (disks, rectangles,
triangles, rings) of log-uniform radius from 3% to 25% of the image side, and 1-3 thin
curves (1-3 px) that are a class of their own. Colours and textures lean towards a class but
overlap, so the shape has to be seen too, and small objects and curves are lost by pooling
that drops detail. Masks carry VOC's 255 border band around each filled shape.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError
from ..io import atomic_folder
from .info import synthetic_info
from .palette import IGNORE_INDEX, colorize
from .shapes import TEXTURES, background, curve_mask, hsv_color, shape_mask, texture

__all__ = ["generate_synthetic", "render_scene", "synthetic_root"]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
_STAMP = "synthetic.json"
_SPLITS = ("train", "val")
_CURVE = 5
# label: (shape, typical hue in degrees, typical textures)
_STYLES = {
    1: ("disk", 15.0, ("radial", "flat")),
    2: ("rectangle", 210.0, ("stripes", "checker")),
    3: ("triangle", 110.0, ("checker", "blotches")),
    4: ("ring", 290.0, ("flat", "stripes")),
}
_SQUARE = np.ones((3, 3), dtype=np.uint8)


def _object_color(rng: np.random.Generator, label: int) -> tuple[np.ndarray, str]:
    _, hue, textures = _STYLES[label]
    if rng.random() < 0.25:  # a quarter of the objects take any colour and texture
        hue, textures = rng.uniform(0, 360), TEXTURES
    color = hsv_color(hue + rng.normal(0.0, 30.0), rng.uniform(0.35, 1.0), rng.uniform(0.45, 1.0))
    kind = (
        textures[int(rng.integers(len(textures)))]
        if rng.random() < 0.75
        else TEXTURES[int(rng.integers(len(TEXTURES)))]
    )
    return color, kind


def _border(instances: np.ndarray) -> np.ndarray:
    """VOC-like ignore band: 1 px outside every shape, plus 1 px inside shapes thicker than 4 px."""
    band = cv2.dilate(instances, _SQUARE) > instances
    for k in np.unique(instances[instances > 0]):
        visible = (instances == k).astype(np.uint8)
        if cv2.erode(visible, np.ones((5, 5), dtype=np.uint8)).any():
            band |= (visible > 0) & (cv2.erode(visible, _SQUARE) == 0)
    return band


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image and its mask: RGB ``uint8`` ``(size, size, 3)`` and ``uint8`` labels 0-5 and 255."""
    image = background(rng, size)
    labels = np.zeros((size, size), dtype=np.uint8)
    instances = np.zeros((size, size), dtype=np.uint8)
    for k in range(1, int(rng.integers(4, 10)) + 1):
        label = int(rng.integers(1, 5))
        radius = size * float(np.exp(rng.uniform(np.log(0.03), np.log(0.25))))
        mask = shape_mask(rng, size, _STYLES[label][0], radius=radius)
        color, kind = _object_color(rng, label)
        if mask.sum() < 4:
            continue
        image[mask] = texture(rng, size, color, kind)[mask]
        labels[mask], instances[mask] = label, k
    labels[_border(instances)] = IGNORE_INDEX
    for _ in range(int(rng.integers(1, 4))):
        mask = curve_mask(rng, size, width=int(rng.integers(1, 4)))
        value = rng.uniform(0.05, 0.3) if rng.random() < 0.5 else rng.uniform(0.8, 1.0)
        image[mask] = hsv_color(rng.uniform(0, 360), rng.uniform(0.0, 1.0), value)
        labels[mask] = _CURVE
    image = cv2.GaussianBlur(image, (0, 0), 0.6) + rng.normal(0.0, 3.0, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels


def _ids(params: dict[str, Any]) -> dict[str, list[str]]:
    return {split: [f"{split}_{i:04d}" for i in range(params[f"num_{split}"])] for split in _SPLITS}


def _read_stamp(voc: Path) -> dict[str, Any] | None:
    try:
        return json.loads((voc / _STAMP).read_text())
    except (OSError, ValueError):
        return None


def _complete(voc: Path, params: dict[str, Any]) -> bool:
    ids = [i for split in _ids(params).values() for i in split]
    return all(
        (voc / "JPEGImages" / f"{i}.jpg").is_file() and (voc / "SegmentationClass" / f"{i}.png").is_file() for i in ids
    )


def _write(voc: Path, params: dict[str, Any]) -> None:
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    palette = synthetic_info().palette
    ids = _ids(params)
    for split_index, split in enumerate(_SPLITS):
        for i, name in enumerate(ids[split]):
            # One generator per image: an image depends only on (seed, split, index).
            image, labels = render_scene(np.random.default_rng([params["seed"], split_index, i]), params["size"])
            Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
            colorize(labels, palette).save(voc / "SegmentationClass" / f"{name}.png")
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
    trainval = ids["train"] + ids["val"]
    (voc / "ImageSets" / "Segmentation" / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (voc / _STAMP).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def generate_synthetic(
    root: str | Path, *, num_train: int = 48, num_val: int = 16, size: int = 128, seed: int = 0
) -> Path:
    """Write the synthetic data set to ``root/VOC2012`` in the VOC layout, unless it is already there.

    ``JPEGImages/<id>.jpg`` (quality 95), ``SegmentationClass/<id>.png`` (palette PNGs with the
    VOC colours, labels 0-5 and 255) and ``ImageSets/Segmentation/{train,val,trainval}.txt``.
    The same arguments give byte-identical files; a stamp (``synthetic.json``) records them, and
    a call with other arguments (or a newer generator) writes the set again.

    Args:
        root: the folder to hold ``VOC2012``; pass it as the data root of ``voc12`` or ``synthetic``.
        num_train: training images.
        num_val: validation images.
        size: image side in pixels.
        seed: the random seed.

    Returns:
        ``root``.
    """
    if num_train < 1 or num_val < 1 or size < 32:
        raise DataError(
            f"expected num_train >= 1, num_val >= 1 and size >= 32, got num_train={num_train}, "
            f"num_val={num_val}, size={size}; pass larger values"
        )
    root = Path(root).expanduser()
    params = {"generator": GENERATOR_VERSION, "num_train": num_train, "num_val": num_val, "size": size, "seed": seed}
    voc = root / "VOC2012"
    stamp = _read_stamp(voc)
    if stamp == params and _complete(voc, params):
        return root
    if voc.exists() and stamp is None:
        raise DataError(
            f"{voc} exists but was not written by generate_synthetic (no {_STAMP}); expected an empty or "
            "generated folder, choose another root or remove it"
        )
    start = time.perf_counter()
    # The set is the unit: it is written into a scratch folder and renamed into place whole,
    # so its files need no rename of their own and a failure leaves no partial set.
    with atomic_folder(voc) as scratch:
        _write(scratch, params)
    logger.info("generated %d synthetic images in %s (%.2f s)", num_train + num_val, voc, time.perf_counter() - start)
    return root


def synthetic_root(root: str | Path) -> Path:
    """``root`` with the synthetic set in place: kept as generated, else written with the defaults.

    A set made by an older generator is written again with its recorded arguments.
    """
    stamp = _read_stamp(Path(root).expanduser() / "VOC2012") or {}
    options = {key: stamp[key] for key in ("num_train", "num_val", "size", "seed") if key in stamp}
    return generate_synthetic(root, **options)
