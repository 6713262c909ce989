"""Memory under load: ``predict`` and ``evaluate`` over many images keep a flat resident set.

Each run is a fresh Python process that records its resident memory (``/proc/self/statm``)
after every image, hooked on the writer of the last file ``predict`` writes per image and on
the metrics update ``evaluate`` makes per image. After the first images (imports, caches
keyed by image size filling), the growth over the rest must stay within a few MiB: anything
kept per image (its logits, its mask) would add up.

glibc's malloc keeps freed blocks of up to 32 MiB for reuse once it has freed a mapped one,
so the resident set of a process that frees a 12-Mpixel image's arrays swings by ~100 MiB
from image to image without growing. The runs fix its mapping threshold at 128 KiB
(``MALLOC_MMAP_THRESHOLD_``): every large array is then mapped and unmapped, and the
resident set follows the memory in use.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ldwseg.datasets import dataset_info
from ldwseg.engine.checkpoints import save_run_checkpoint
from ldwseg.models import build_unet
from ldwseg.tasks import load_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident set from /proc"),
]

RECORDER = r"""
import json, os, sys
from pathlib import Path

import ldwseg.seg.evaluate as evaluate
import ldwseg.seg.predict as predict

PAGE = os.sysconf("SC_PAGE_SIZE")
resident = []


def record():
    with open("/proc/self/statm") as f:
        resident.append(int(f.read().split()[1]) * PAGE)


command, checkpoint, root, out = sys.argv[1:5]
if command == "predict":
    write = predict.write_pil_image

    def recording_write(path, image, fmt=None):
        write(path, image, fmt)
        if Path(path).name.endswith("_overlay.png"):  # an image's last file
            record()

    predict.write_pil_image = recording_write
    predict.predict_images(checkpoint, [Path(root) / "images"], out, device="cpu")
else:
    update = evaluate.SegmentationMetrics.update

    def recording_update(self, logits, target):
        update(self, logits, target)
        record()

    evaluate.SegmentationMetrics.update = recording_update
    evaluate.evaluate_checkpoint(checkpoint, dataset="folder", root=root, device="cpu")
print(json.dumps(resident))
"""

MiB = 2**20


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny UNet for the 6 synthetic classes, written as training writes it."""
    info = dataset_info("synthetic")
    record = {"name": "synthetic", "num_classes": info.num_classes, "class_names": list(info.class_names),
              "palette": info.palette.tolist(), "ignore_index": info.ignore_index, "out_channels": info.num_classes}  # fmt: skip
    cfg = load_config(None, {"model.base_width": 4, "model.depth": 2})
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_run_checkpoint(path, build_unet(cfg.model, 3, info.num_classes), cfg, record, epoch=0, metrics={})
    return path


def blocks(rng: np.random.Generator, shape: tuple[int, ...], high: int) -> np.ndarray:
    """Random values in 8 x 8 blocks (PNG stores them small), cropped to ``shape``, ``uint8``."""
    h, w, *rest = shape
    coarse = rng.integers(0, high, (h // 8 + 1, w // 8 + 1, *rest), dtype=np.uint8)
    return coarse.repeat(8, 0).repeat(8, 1)[:h, :w]


def image_folder(root: Path, sizes: list[tuple[int, int]], classes: int = 6) -> Path:
    """``root/images/<k>.png`` of the given (height, width) sizes and ``root/masks/<k>.png`` labels."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, (h, w) in enumerate(sizes):
        Image.fromarray(blocks(rng, (h, w, 3), 256)).save(root / "images" / f"{k:04d}.png")
        Image.fromarray(blocks(rng, (h, w), classes)).save(root / "masks" / f"{k:04d}.png")
    return root


def resident_per_image(command: str, checkpoint: Path, root: Path, out: Path) -> np.ndarray:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    proc = subprocess.run([sys.executable, "-c", RECORDER, command, str(checkpoint), str(root), str(out)],
                          capture_output=True, text=True, env=env, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]), dtype=np.int64)


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Path:
    """500 images of 40 sizes between 33 and 171 pixels a side: each size once, then in random order."""
    rng = np.random.default_rng(1)
    shapes = [(int(h), int(w)) for h, w in rng.integers(33, 172, (40, 2))]
    return image_folder(tmp_path_factory.mktemp("mixed"), shapes + [shapes[k] for k in rng.integers(0, 40, 460)])


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_resident_memory_stays_flat_over_500_images_of_mixed_sizes(checkpoint, mixed_sizes, tmp_path, command):
    """Measured: +15 MiB over the first 40 images (a new size each: caches keyed by shape), then at most
    0.7 MiB (predict: the list of files it returns) and 1.6 MiB (evaluate) above image 51's over the 450
    after it. Keeping every image's logits (~240 KiB each) would add ~100 MiB, its mask ~4.5 MiB."""
    resident = resident_per_image(command, checkpoint, mixed_sizes, tmp_path / "out")
    assert len(resident) == 500
    growth = resident[50:].max() - resident[50]
    assert growth < 4 * MiB, f"{command}: the resident set grew by {growth / MiB:.1f} MiB over images 51-500"


def test_resident_memory_stays_flat_over_five_4000_by_3000_images(checkpoint, tmp_path):
    """12 Mpixels each, run in 1024-pixel tiles; measured: the same resident set (972 MiB) after each of
    ten (2 minutes alone on 2 cores; five here keep the suite short). One image's mask kept per image
    would add 12 MiB each, 36 MiB over images 2-5."""
    root = image_folder(tmp_path / "large", [(3000, 4000)] * 5)
    resident = resident_per_image("predict", checkpoint, root, tmp_path / "out")
    assert len(resident) == 5
    growth = resident[1:].max() - resident[1]
    assert growth < 8 * MiB, f"the resident set grew by {growth / MiB:.1f} MiB over images 2-5"
