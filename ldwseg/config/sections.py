"""The four sections of a run configuration, each a dataclass that checks its own values.

``model`` (:class:`ModelConfig`), ``data`` (:class:`DataConfig`), ``optim``
(:class:`OptimConfig`) and ``train`` (:class:`TrainConfig`); a check that needs two
sections at once is :meth:`ldwseg.config.Config.validate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError, check_choice
from ..models.build import check_network_spec
from ..task_kinds import TASK_KINDS

__all__ = [
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "TASK_CHOICES",
    "AMP_CHOICES",
    "LOSS_CHOICES",
    "SCHEDULE_CHOICES",
    "OPTIMIZER_CHOICES",
    "CLASS_WEIGHT_METHODS",
    "WEIGHTED_LOSSES",
    "DEVICE_PATTERN",
    "MAX_CROP",
    "MAX_BATCH_PIXELS",
]

TASK_CHOICES = tuple(TASK_KINDS)
AMP_CHOICES = ("off", "bf16", "fp16")
LOSS_CHOICES = tuple(loss for kind in TASK_KINDS.values() for loss in kind.losses)
SCHEDULE_CHOICES = ("step", "poly", "cosine")
OPTIMIZER_CHOICES = ("adam", "adamw", "sgd")
CLASS_WEIGHT_METHODS = ("median", "enet")
WEIGHTED_LOSSES = ("ce", "ce+dice")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_CROP = 8192
MAX_BATCH_PIXELS = 2**30


@dataclass
class ModelConfig:
    """The network: the UNet (widths, down/up samplers) or an smp architecture, and the LDW pooling options.

    A :class:`~ldwseg.models.build.NetworkSpec`: :func:`~ldwseg.models.build.build_network`
    builds the model. ``arch="unet"`` is the paper's UNet (:func:`~ldwseg.models.build_unet`):
    ``down`` and ``up`` name blocks of :data:`~ldwseg.models.DOWNSAMPLERS` and
    :data:`~ldwseg.models.UPSAMPLERS`; ``learn_filters=false`` keeps every LDW pool at its
    initial wavelet (a fixed DWT), the control for learned filters. ``norm="affine"``
    replaces the UNet's BatchNorm by a learned per-channel scale and shift
    (:mod:`ldwseg.models.layers.norm`; the autoencoder's default).

    The defaults are an LDW design at the max-pool UNet's parameters (whether it beats max
    pooling is the question of the comparisons in ``docs/results.md``):
    ``ldw-efficient`` (a 1x1 conv ``C -> C/4``, then the pool) with the paired reverse pool,
    db2 on the lattice (learnable, always orthogonal), no energy attention. The
    paper-literal LDW-UNet is ``down=ldw, wavelet=haar, constraint=paper, attention=true``.

    ``arch="smp-*"`` is a segmentation_models_pytorch network on ``encoder`` with
    ``encoder_weights``; what it reads of these fields and what it refuses is in
    :mod:`ldwseg.models.smp` (``up``, ``base_width`` and ``depth`` are the UNet's alone).
    """

    down: str = "ldw-efficient"
    up: str = "ldw"
    in_channels: int = 3
    base_width: int = 16
    depth: int = 4
    wavelet: str = "db2"
    kernel_size: int | None = None
    constraint: str = "lattice"
    attention: bool = False
    efficient: bool = False
    norm: str = "batch"
    skip: bool = True
    learn_filters: bool = True
    arch: str = "unet"
    encoder: str = "resnet18"
    encoder_weights: str | None = None

    def validate(self) -> None:
        """The checks of the arch (:func:`ldwseg.models.build.check_network_spec`), naming the fields ``model.*``."""
        if not 1 <= self.in_channels <= 1024:
            raise ConfigError(
                f"model.in_channels must be in [1, 1024] (1 for gray images, 3 for RGB), got {self.in_channels}"
            )
        check_network_spec(self, prefix="model.")


@dataclass
class DataConfig:
    """Which data set, where, and how it is augmented and evaluated.

    ``scale_min``/``scale_max``: the range of the training images' random resize;
    ``eval_scale``: the resize of validation and evaluation images before the network (the
    logits are resized back and scored at the labels' size, :mod:`ldwseg.inference.scale`);
    ``repeat``: passes over the training set per epoch (:class:`~ldwseg.engine.sampling.SeededSamples`).
    ``class_names`` and ``palette`` name a ``folder`` data set's classes (else its
    ``classes.txt``, :mod:`ldwseg.datasets.folder`); ``mean`` and ``std`` normalise each
    image channel (default: ImageNet's for RGB, 0.5 and 0.25 otherwise,
    :func:`~ldwseg.datasets.normalization`). ``num_workers``: data-loading processes, ``None``
    for the device's default (0 on the CPU, where workers would take cores from the training;
    ``min(8, cores per process)`` on CUDA, :func:`~ldwseg.engine.build.data_workers`); the
    batches do not depend on it. ``cache``: keep the decoded training and validation pairs in
    memory, so epochs after the first skip decoding (the same batches; for data sets that fit
    in memory, :class:`~ldwseg.datasets.base.SegmentationDataset`).
    """

    dataset: str = "synthetic"
    root: str | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    palette: list[list[int]] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    train_split: str = "train"
    val_split: str = "val"
    crop_size: int = 96
    scale_min: float = 0.5
    scale_max: float = 2.0
    eval_scale: float = 1.0
    repeat: int = 1
    num_workers: int | None = None
    cache: bool = False
    download: bool = False
    skip_bad: bool = False

    def validate(self) -> None:
        _positive("data.crop_size", self.crop_size)
        if self.crop_size > MAX_CROP:
            raise ConfigError(
                f"data.crop_size must be <= {MAX_CROP} pixels, got {self.crop_size}; train on smaller crops"
            )
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError(f"need 0 < data.scale_min <= data.scale_max, got {self.scale_min} and {self.scale_max}")
        if not 0 < self.eval_scale <= 4:
            raise ConfigError(
                f"data.eval_scale must be in (0, 4] (the factor images are resized by before the network; 1 = as "
                f"read), got {self.eval_scale}"
            )
        _positive("data.repeat", self.repeat)
        if (self.mean is None) != (self.std is None) or (self.mean is not None and len(self.mean) != len(self.std)):
            raise ConfigError(
                f"data.mean and data.std give one value per image channel, both or neither; got {self.mean} and "
                f"{self.std}"
            )
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"data.std must be positive, got {self.std}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0 (or null: the device's default), got {self.num_workers}")


@dataclass
class OptimConfig:
    """Adam, AdamW or SGD with step, poly or cosine decay and a linear warm-up
    (:mod:`ldwseg.engine.optim`, which says what each field does; the LDW filters get
    ``filter_lr`` and never weight decay, biases and norms none unless ``norm_bias_decay``).
    The paper's recipe is in ``configs/voc12_unet_*.yaml``; the defaults are the quick run
    on the embedded data.
    """

    name: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    norm_bias_decay: bool = False
    momentum: float = 0.9
    nesterov: bool = False
    filter_lr: float | None = None
    schedule: str = "step"
    step_size: int = 20
    gamma: float = 0.1
    power: float = 0.9
    by_epoch: bool = True
    warmup_steps: int = 0

    def validate(self) -> None:
        check_choice("optim.name", self.name, OPTIMIZER_CHOICES)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optim.momentum (SGD's) must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ConfigError("optim.nesterov needs optim.name=sgd with optim.momentum > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.filter_lr is not None and self.filter_lr < 0:
            raise ConfigError(f"optim.filter_lr must be >= 0 (0 freezes the filters), got {self.filter_lr}")
        check_choice("optim.schedule", self.schedule, SCHEDULE_CHOICES)
        if self.power <= 0:
            raise ConfigError(f"optim.power (the poly schedule's exponent) must be positive, got {self.power}")
        _positive("optim.step_size", self.step_size)
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0 (0 = no warm-up), got {self.warmup_steps}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"optim.gamma (the learning-rate decay factor) must be in (0, 1], got {self.gamma}")


@dataclass
class TrainConfig:
    """The loop: task, length, batch, loss weights, devices and precision.

    ``compile``: train through ``torch.compile`` of the network (inductor; meant for GPUs: on a
    2-core CPU it made a step 1.7x slower). Checkpoints keep the plain network's keys; a network
    that inductor cannot compile fails the run at its first step with one line naming this field.
    """

    task: str = "seg"
    epochs: int = 24
    batch_size: int = 8
    loss: str = "ce"
    class_weights: str | list[float] | None = None
    wavelet_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    eval_every: int = 1
    val_batch_size: int = 1
    max_steps_per_epoch: int | None = None
    checkpoint_every: int = 0
    checkpoint_minutes: float = 10.0
    sync_bn: bool = False
    ema_decay: float = 0.0
    init_from: str | None = None
    compile: bool = False

    def validate(self) -> None:
        check_choice("train.task", self.task, TASK_CHOICES)
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"train.device={self.device!r} is not a device; use auto, cpu, cuda or cuda:N")
        check_choice("train.amp", self.amp, AMP_CHOICES)
        check_choice("train.loss", self.loss, LOSS_CHOICES)
        _positive("train.epochs", self.epochs)
        _positive("train.batch_size", self.batch_size)
        _positive("train.val_batch_size", self.val_batch_size)
        _positive("train.eval_every", self.eval_every)
        if self.wavelet_weight < 0:
            raise ConfigError(f"train.wavelet_weight must be >= 0, got {self.wavelet_weight}")
        if self.max_steps_per_epoch is not None:
            _positive("train.max_steps_per_epoch", self.max_steps_per_epoch)
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(
                f"train.ema_decay must be in [0, 1) (0 = no weight average; 0.999 averages ~1000 steps), "
                f"got {self.ema_decay}"
            )
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"train.seed must be in [0, 2**63), got {self.seed}")
        if self.checkpoint_every < 0 or self.checkpoint_minutes < 0:
            raise ConfigError(
                "train.checkpoint_every (steps) and train.checkpoint_minutes must be >= 0 (0 = only at epoch ends), "
                f"got {self.checkpoint_every} and {self.checkpoint_minutes}"
            )
        losses = TASK_KINDS[self.task].losses
        if self.loss not in losses:
            raise ConfigError(
                f"train.loss={self.loss!r} does not fit train.task={self.task!r}; choose one of {', '.join(losses)}"
            )
        self._validate_class_weights()

    def _validate_class_weights(self) -> None:
        weights = self.class_weights
        if weights is None:
            return
        if self.loss not in WEIGHTED_LOSSES:
            raise ConfigError(
                f"train.class_weights weights the cross-entropy, but train.loss={self.loss!r}; use train.loss=ce or "
                "ce+dice, or drop train.class_weights"
            )
        if isinstance(weights, str) and weights not in CLASS_WEIGHT_METHODS:
            raise ConfigError(
                f"train.class_weights={weights!r} is not valid; give one weight per class as a list "
                f"([1.0, 2.5, ...]) or compute them from the training labels: {', '.join(CLASS_WEIGHT_METHODS)}"
            )
        if isinstance(weights, list) and (not weights or min(weights) < 0 or max(weights) <= 0):
            raise ConfigError(
                f"train.class_weights must be non-negative with at least one positive weight, got {weights}"
            )


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}")
