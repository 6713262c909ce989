"""The UNet's down and up blocks by name: ``model.down`` and ``model.up`` are keys of these tables."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..errors import ConfigError
from .blocks import DeconvUp, LDWDetailUp, LDWDown, LDWUp, MaxPoolDown, PoolOptions

__all__ = ["DOWNSAMPLERS", "UPSAMPLERS", "check_choice", "create_down", "create_up", "get_down", "get_up"]

DOWNSAMPLERS: dict[str, type[nn.Module]] = {"maxpool": MaxPoolDown, "ldw": LDWDown}
"""Encoder blocks: ``(in_channels, out_channels)``, halving the size."""

UPSAMPLERS: dict[str, type[nn.Module]] = {"deconv": DeconvUp, "ldw": LDWUp, "ldw-detail": LDWDetailUp}
"""Decoder blocks: ``(in_channels, skip_channels, out_channels)``, restoring the skip's size.
The :class:`~ldwseg.models.blocks.LDWUp` ones reverse the encoder's LDW pool of their level."""


def check_choice(label: str, name: str, choices: Iterable[str]) -> str:
    """``name`` if it is one of ``choices``; else a :class:`~ldwseg.errors.ConfigError` listing them.

    ``label`` names the argument in the message (``"model.down"`` for a config field).
    """
    choices = tuple(choices)
    if name not in choices:
        raise ConfigError(f"{label}={name!r} is not valid; choose one of {', '.join(choices)}")
    return name


def get_down(name: str, *, label: str = "down") -> type[nn.Module]:
    """The down block class called ``name`` (a key of :data:`DOWNSAMPLERS`)."""
    return DOWNSAMPLERS[check_choice(label, name, DOWNSAMPLERS)]


def get_up(name: str, *, label: str = "up") -> type[nn.Module]:
    """The up block class called ``name`` (a key of :data:`UPSAMPLERS`)."""
    return UPSAMPLERS[check_choice(label, name, UPSAMPLERS)]


def create_down(
    name: str, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions(), efficient: bool = False
) -> nn.Module:
    """The down block ``name`` from ``in_channels`` to ``out_channels``.

    ``pool`` and ``efficient`` configure LDW blocks; max pooling has no options.

    Example:
        >>> create_down("ldw", 8, 16, pool=PoolOptions(wavelet="db2")).pool
        LDWPool2d(8, wavelet='db2', kernel_size=4, constraint='paper')
        >>> create_down("avgpool", 8, 16)
        Traceback (most recent call last):
        ...
        ldwseg.errors.ConfigError: down='avgpool' is not valid; choose one of maxpool, ldw
    """
    block = get_down(name)
    if issubclass(block, LDWDown):
        return block(in_channels, out_channels, pool=pool, efficient=efficient)
    return block(in_channels, out_channels)


def create_up(
    name: str, in_channels: int, skip_channels: int, out_channels: int, *, paired: nn.Module, skip: bool = True
) -> nn.Module:
    """The up block ``name``; ``paired`` is the down block of the same level.

    An LDW up block reverses ``paired``'s pool, so ``paired`` must be an
    :class:`~ldwseg.models.blocks.LDWDown`.
    """
    block = get_up(name)
    if not issubclass(block, LDWUp):
        return block(in_channels, skip_channels, out_channels, skip=skip)
    if not isinstance(paired, LDWDown):
        raise ConfigError(
            f"up={name!r} pairs each reverse pool with an LDW pool, but the down block of this level is "
            f"{type(paired).__name__}; use down=ldw or up=deconv"
        )
    return block(in_channels, skip_channels, out_channels, pool=paired.pool, skip=skip)
