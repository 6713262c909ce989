"""Typed, validated run configuration: YAML files plus ``section.field=value`` overrides.

A :class:`Config` has four sections (``model``, ``data``, ``optim``, ``train``). Files in
``configs/`` give any subset of fields; everything else keeps its default. The resolved
config is written next to every checkpoint and stored inside it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .io.atomic import atomic_write
from .io.yaml_file import coerce_value, read_yaml
from .models.build import check_network_spec
from .task_kinds import TASK_KINDS

__all__ = ["Config", "ModelConfig", "DataConfig", "OptimConfig", "TrainConfig", "compose_config", "apply_overrides"]

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
    batches do not depend on it.
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
        _choice("optim.name", self.name, OPTIMIZER_CHOICES)
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
        _choice("optim.schedule", self.schedule, SCHEDULE_CHOICES)
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
        _choice("train.task", self.task, TASK_CHOICES)
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"train.device={self.device!r} is not a device; use auto, cpu, cuda or cuda:N")
        _choice("train.amp", self.amp, AMP_CHOICES)
        _choice("train.loss", self.loss, LOSS_CHOICES)
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


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        for section in (self.model, self.data, self.optim, self.train):
            section.validate()
        if self.data.mean is not None and len(self.data.mean) != self.model.in_channels:
            raise ConfigError(
                f"data.mean and data.std give {len(self.data.mean)} channel(s) but model.in_channels is "
                f"{self.model.in_channels}; give one value per image channel"
            )
        pixels = self.train.batch_size * self.data.crop_size**2
        if pixels > MAX_BATCH_PIXELS:
            raise ConfigError(
                f"train.batch_size={self.train.batch_size} crops of {self.data.crop_size}x{self.data.crop_size} are "
                f"{pixels:.2e} pixels per batch, more than the {MAX_BATCH_PIXELS:.2e} ldwseg allows (their "
                "activations would exhaust memory); lower the batch size or data.crop_size"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], *, source: str = "config", base: Config | None = None, validate: bool = True
    ) -> Config:
        """Build and validate from nested dicts (on top of ``base``); unknown keys and wrong types are errors.

        ``validate=False`` leaves the checks of values and their combinations to the caller
        (for a config that overrides will still change); a failed check names ``source``.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
        cfg = copy.deepcopy(base) if base is not None else cls()
        for section_name, values in raw.items():
            section = _section(cfg, section_name, source)
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: section {section_name!r} must be a mapping, got {values!r}")
            for key, value in values.items():
                _set_field(section, section_name, key, value, source)
        if not validate:
            return cfg
        try:
            return cfg.validate()
        except ConfigError as exc:
            if source == "config":
                raise
            raise ConfigError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the config as YAML, atomically: ``path`` holds the earlier file or this one, never a part of it.

        Raises:
            WriteFailed: the disk is full, read-only or failing (see :func:`~ldwseg.io.atomic_write`).
        """
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(choices)}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}")


def _section(cfg: Config, name: str, source: str):
    names = [f.name for f in dataclasses.fields(cfg)]
    if name not in names:
        raise ConfigError(f"{source}: unknown section {name!r}; valid sections are {', '.join(names)}")
    return getattr(cfg, name)


def _field_types(section) -> dict[str, Any]:
    return typing.get_type_hints(type(section))


def _set_field(section, section_name: str, key: str, value: Any, source: str) -> None:
    hints = _field_types(section)
    if key not in hints:
        raise ConfigError(
            f"{source}: unknown key {section_name}.{key}; valid keys are "
            + ", ".join(f"{section_name}.{k}" for k in hints)
        )
    setattr(section, key, coerce_value(value, hints[key], f"{section_name}.{key}", source))


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any], *, validate: bool = True) -> Config:
    """Apply ``section.field=value`` strings (values parsed as YAML) or a ``{key: value}`` dict, then validate."""
    for dotted, value in _override_items(overrides):
        if "." not in dotted:
            raise ConfigError(f"override {dotted!r} must name section.field, e.g. model.base_width=16")
        section_name, key = dotted.split(".", 1)
        _set_field(_section(cfg, section_name, "override"), section_name, key, value, "override")
    return cfg.validate() if validate else cfg


def _override_items(overrides: list[str] | dict[str, Any]) -> list[tuple[str, Any]]:
    return list(overrides.items()) if isinstance(overrides, dict) else [_split_override(o) for o in overrides]


def _split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _task_of(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> str:
    task = dict(_override_items(overrides)).get("train.task")
    if task is None and isinstance(raw.get("train"), dict):
        task = raw["train"].get("task")
    task = task or "seg"
    _choice("train.task", task, TASK_CHOICES)
    return task


def compose_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    task_defaults: Mapping[str, Mapping[str, Any]],
    validate: bool = True,
) -> Config:
    """Defaults, the task's defaults, the YAML file (if any), then the overrides; validated once, at the end.

    ``task_defaults`` maps each task name to what it changes (``{"section.field": value}``);
    :func:`ldwseg.tasks.load_config` passes every task's own. ``validate=False`` returns the
    unchecked result, for a caller that applies more overrides.
    """
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        raw = read_yaml(path)
        source = str(path)
    overrides = overrides or []
    base = Config()
    for dotted, value in task_defaults[_task_of(raw if isinstance(raw, dict) else {}, overrides)].items():
        section, key = dotted.split(".", 1)
        _set_field(getattr(base, section), section, key, value, "task defaults")
    cfg = Config.from_dict(raw, source=source, base=base, validate=False)
    return apply_overrides(cfg, overrides, validate=validate)
