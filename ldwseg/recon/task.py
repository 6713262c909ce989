"""The reconstruction (autoencoding) task: random crops in, the same crops out.

The model is the UNet with its skip connections switched off (``model.skip=false``).
What still crosses from encoder to decoder depends on the up block:

* ``up=ldw``, ``deconv`` or ``shuffle``: nothing; everything passes the bottleneck, whose
  ``2^depth * base_width`` channels at ``1 / 2^depth`` of the size hold
  ``base_width / 2^depth`` numbers per input pixel (1 for the defaults, against the
  image's 3), so no such autoencoder can be lossless;
* ``up=ldw-detail`` (the default, after ``down=ldw-ll``): each level's stored ``LH, HL, HH``
  bands go straight to its reverse pool, a wavelet bypass (as in WCT2);
* ``up=unpool-detail`` after ``down=maxpool-detail``: each level's residual to its 2x2
  window maxima, the same amount of side information around max pooling
  (:mod:`ldwseg.models.unet.blocks.bypass`).

The loss is L1 or MSE (+ the constraint loss); the validation score is the mean PSNR of
the held-out images, each run on the image padded to the UNet's stride
(:func:`~ldwseg.recon.autoencode.autoencode`, as ``ldwseg reconstruct`` runs it), after
clamping the output to [0, 1], each image's PSNR capped at
:data:`~ldwseg.recon.quality.PSNR_CAP` dB.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..config import Config
from ..engine.precision import Precision
from ..engine.task import TaskData
from ..errors import ConfigError
from .autoencode import autoencode
from .data import ImageCrops, recon_files
from .quality import PSNR_CAP, psnr_from_mse

__all__ = ["ReconstructionTask"]


class ReconstructionTask:
    name = "recon"
    label = "PSNR (dB)"
    score = "psnr"
    defaults = {
        "train.task": "recon",
        "data.dataset": "photos",
        "data.crop_size": 64,
        "model.skip": False,
        "model.down": "ldw-ll",
        "model.up": "ldw-detail",
        "model.wavelet": "haar",
        "model.constraint": "orthogonal",
        "model.attention": False,  # ldw-ll's conv sees one band: there is nothing to gate
        # no batch statistics: training and evaluation compute the same function
        "model.norm": "affine",
        "train.loss": "l1",
        # many small steps at one budget; enough epochs for a run without BatchNorm to
        # leave its early plateau (the measurements: docs/results.md, "Reconstruction")
        "train.epochs": 36,
        "train.batch_size": 4,
        "optim.schedule": "cosine",
        # the average of the last ~200 steps (1 / (1 - 0.995)) is scored and saved
        "train.ema_decay": 0.995,
    }

    def data(self, cfg: Config) -> TaskData:
        d = cfg.data
        if cfg.model.skip:
            raise ConfigError(
                "the reconstruction task needs model.skip=false: skip connections would carry the image "
                "around the pools; use --set model.skip=false"
            )
        common = {"crop_size": d.crop_size, "skip_bad": d.skip_bad}
        train = ImageCrops(recon_files(d.dataset, d.root, d.train_split, skip_bad=d.skip_bad), train=True, **common)
        val = ImageCrops(recon_files(d.dataset, d.root, d.val_split, skip_bad=d.skip_bad), train=False, **common)
        record = {"name": d.dataset, "out_channels": 3, "val_images": [str(p) for p in val.files]}
        return TaskData(train, val, 3, record)

    def criterion(self, cfg: Config, data: TaskData | None = None):
        if cfg.train.loss == "l1":
            return nn.L1Loss()
        if cfg.train.loss == "mse":
            return nn.MSELoss()
        raise ConfigError(f"train.loss={cfg.train.loss!r} is a segmentation loss; use l1 or mse for --task recon")

    @torch.no_grad()
    def evaluate(self, model, loader, *, precision: Precision, data: TaskData) -> dict:
        """Mean per-image PSNR (dB, each capped at ``PSNR_CAP``) and L1 error over all ranks' images."""
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=precision.device)  # psnr, l1, images
        for images, _ in loader:
            images = precision.inputs(images)
            with precision.autocast():
                out = autoencode(model, images)
            error = out.float().clamp(0, 1) - images
            sums[0] += psnr_from_mse(error.square().flatten(1).mean(1)).clamp_max(PSNR_CAP).sum()
            sums[1] += error.abs().flatten(1).mean(1).sum()
            sums[2] += images.shape[0]
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        count = max(sums[2].item(), 1.0)
        return {"psnr": sums[0].item() / count, "l1": sums[1].item() / count}
