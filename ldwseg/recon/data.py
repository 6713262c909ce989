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

from ..errors import DataError
from ..seg.data import build_dataset, default_data_dir, read_image
from ..seg.data.reading import IMAGE_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "ImageCrops", "recon_files", "ensure_photos"]

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
                tmp = path.with_suffix(".tmp.png")
                Image.fromarray(np.asarray(getattr(samples, name)())).save(tmp)
                tmp.replace(path)
    return root


def _listed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def recon_files(dataset: str, root: str | Path | None, split: str) -> list[Path]:
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
    return [img for img, _ in build_dataset(dataset, root, split).files]


class ImageCrops(Dataset):
    """``(crop, crop)`` pairs of float tensors (3, S, S) in [0, 1].

    Training takes ``crops_per_image`` random ``crop_size`` crops of each image per epoch
    (reflect-padded when the image is smaller) with random horizontal flips; validation takes the central crop of at most
    ``val_size`` pixels per side, so every validation image is scored the same way.
    """

    def __init__(
        self, files: list[Path], *, crop_size: int, train: bool, val_size: int = 512, crops_per_image: int = 8
    ) -> None:
        if not files:
            raise DataError("the reconstruction data set has no images for this split")
        self.files, self.crop_size, self.train, self.val_size = files, crop_size, train, val_size
        self.repeats = crops_per_image if train else 1

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

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        img = self._crop(read_image(self.files[index % len(self.files)]))
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        return x, x
