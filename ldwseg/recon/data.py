"""Image data for the autoencoding task: random crops of photos, target = input.

Data sets (``--dataset``):

* ``photos`` (the embedded default): scikit-image's bundled sample photos, written once
  as PNG files into ``<data dir>/photos``, plus the synthetic images. ``coffee``,
  ``chelsea`` and ``camera`` are held out for validation.
* ``folder``: any image folder; ``root/train`` and ``root/val`` when they exist,
  otherwise every 10th file (sorted) is held out.
* any segmentation data set name (``voc12``, ``voc12-aug``, ``camvid``, ``synthetic``):
  its images, with its own train/val split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..datasets import build_dataset, default_data_dir, read_image
from ..datasets.base import MIN_SIDE, list_paths, map_threads
from ..datasets.reading import IMAGE_SUFFIXES
from ..errors import DataError
from ..io import write_pil_image

__all__ = ["CACHE_BYTES", "ImageCrops", "check_images", "ensure_photos", "recon_files"]

log = logging.getLogger(__name__)

PHOTOS_TRAIN = (
    "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass", "gravel",
    "moon", "coins", "clock", "page", "text", "cell", "colorwheel",
)  # fmt: skip
PHOTOS_VAL = ("coffee", "chelsea", "camera")


def ensure_photos(root: Path) -> Path:
    """Write scikit-image's sample photos (and link the synthetic images) under ``root`` once."""
    from skimage import data as samples

    for split, names in (("train", PHOTOS_TRAIN), ("val", PHOTOS_VAL)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = folder / f"{name}.png"
            if not path.exists():
                write_pil_image(path, Image.fromarray(np.asarray(getattr(samples, name)())), "PNG")
    return root


def _listed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def recon_files(dataset: str, root: str | Path | None, split: str, *, skip_bad: bool = False) -> list[Path]:
    """Image paths of ``split`` (``train`` or ``val``) of a reconstruction data set."""
    if dataset == "photos":
        base = ensure_photos(Path(root) if root else default_data_dir() / "photos")
        files = _listed(base / split)
        if split == "train":
            files += [img for img, _ in build_dataset("synthetic", None, "train").files]
        return files
    if dataset == "folder":
        if root is None:
            raise DataError("--dataset folder needs --data-root DIR, a folder of images")
        base = Path(root)
        if not base.is_dir():
            raise DataError(f"image folder {base} does not exist; point --data-root at a folder of images")
        if (base / "train").is_dir() and (base / "val").is_dir():
            return _listed(base / split)
        files = _listed(base)
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {base}")
        held_out = files[::10]
        return held_out if split == "val" else [f for f in files if f not in set(held_out)]
    # only the images matter here; ImageCrops reads (checks) them
    return [img for img, _ in build_dataset(dataset, root, split, skip_bad=skip_bad, check=False).files]


def _problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as a training image, or ``None``."""
    try:
        read_image(path, min_size=MIN_SIDE)
    except DataError as err:
        return str(err)
    return None


def check_images(files: list[Path], *, skip_bad: bool = False) -> list[Path]:
    """Read every file; fail listing the unusable ones, or with ``skip_bad`` leave them out (logged)."""
    problems = map_threads(_problem, files)
    bad = [(f, why) for f, why in zip(files, problems) if why is not None]
    if not bad:
        return list(files)
    listed = list_paths([f for f, _ in bad])
    if not skip_bad:
        raise DataError(
            f"{len(bad)} of {len(files)} images cannot be used: {listed} (first: {bad[0][1].rstrip('.')}); "
            "fix or remove them, or pass --skip-bad to leave them out"
        )
    log.warning("skipped %d of %d images: %s", len(bad), len(files), listed)
    kept = [f for f, why in zip(files, problems) if why is None]
    if not kept:
        raise DataError(f"all {len(files)} images cannot be used, e.g. {bad[0][1]}; check the data root")
    return kept


CACHE_BYTES = 1 << 30
"""How many bytes of decoded images each :class:`ImageCrops` keeps in memory (per data
loader worker): decoding a 512x512 PNG costs about as much as a training step's share of
a crop, so a photo set that fits is decoded once, and a larger one is read per crop."""


class ImageCrops(Dataset):
    """``(crop, crop)`` pairs of float tensors (3, S, S) in [0, 1].

    Training takes ``crops_per_image`` random ``crop_size`` crops of each image per epoch
    (reflect-padded when the image is smaller) with random horizontal flips; validation takes the central crop of at most
    ``val_size`` pixels per side, so every validation image is scored the same way.
    Decoded images are kept, up to ``cache_bytes`` in all, so each is decoded once.

    Every file is read once when the data set is made (``check=True``): unreadable files
    and images smaller than 8x8 make it fail with one error listing them, or, with
    ``skip_bad``, are left out (``.skipped`` lists them).
    """

    def __init__(
        self,
        files: list[Path],
        *,
        crop_size: int,
        train: bool,
        val_size: int = 512,
        crops_per_image: int = 8,
        skip_bad: bool = False,
        check: bool = True,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        if not files:
            raise DataError("the reconstruction data set has no images for this split")
        kept = check_images(files, skip_bad=skip_bad) if check else list(files)
        self.skipped = [f for f in files if f not in set(kept)]
        self.files, self.crop_size, self.train, self.val_size = kept, crop_size, train, val_size
        self.repeats = crops_per_image if train else 1
        self.cache_bytes, self._cache, self._cached = cache_bytes, {}, 0

    def __len__(self) -> int:
        return len(self.files) * self.repeats

    def _crop(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if not self.train:
            ch, cw = min(h, self.val_size), min(w, self.val_size)
            top, left = (h - ch) // 2, (w - cw) // 2
            return img[top : top + ch, left : left + cw]
        s = self.crop_size
        if h < s or w < s:
            img = np.pad(img, ((0, max(0, s - h)), (0, max(0, s - w)), (0, 0)), mode="reflect")
            h, w = img.shape[:2]
        top, left = np.random.randint(0, h - s + 1), np.random.randint(0, w - s + 1)
        crop = img[top : top + s, left : left + s]
        return crop[:, ::-1] if np.random.rand() < 0.5 else crop

    def _image(self, index: int) -> np.ndarray:
        img = self._cache.get(index)
        if img is None:
            img = read_image(self.files[index])
            if self._cached + img.nbytes <= self.cache_bytes:
                self._cache[index] = img
                self._cached += img.nbytes
        return img

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # the sequence protocol: plain iteration ends at the first IndexError
        if not 0 <= index < len(self):
            raise IndexError(f"crop {index} of a data set of {len(self)}")
        img = self._crop(self._image(index % len(self.files)))
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        return x, x
