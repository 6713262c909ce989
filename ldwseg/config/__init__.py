"""Typed, validated run configuration: YAML files plus ``section.field=value`` overrides.

A :class:`Config` has four sections (``model``, ``data``, ``optim``, ``train``;
:mod:`ldwseg.config.sections`). Files in ``configs/`` give any subset of fields; everything
else keeps its default (:mod:`ldwseg.config.compose`). The resolved config is written next
to every checkpoint and stored inside it.
"""

from ..errors import ConfigError
from .compose import Config, apply_overrides, compose_config
from .sections import (
    AMP_CHOICES,
    CLASS_WEIGHT_METHODS,
    DEVICE_PATTERN,
    LOSS_CHOICES,
    MAX_BATCH_PIXELS,
    MAX_CROP,
    OPTIMIZER_CHOICES,
    SCHEDULE_CHOICES,
    TASK_CHOICES,
    WEIGHTED_LOSSES,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "ConfigError",
    "compose_config",
    "apply_overrides",
    "AMP_CHOICES",
    "CLASS_WEIGHT_METHODS",
    "DEVICE_PATTERN",
    "LOSS_CHOICES",
    "MAX_BATCH_PIXELS",
    "MAX_CROP",
    "OPTIMIZER_CHOICES",
    "SCHEDULE_CHOICES",
    "TASK_CHOICES",
    "WEIGHTED_LOSSES",
]
