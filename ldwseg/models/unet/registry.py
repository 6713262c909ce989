"""The UNet's down and up blocks by name: ``model.down`` and ``model.up`` are keys of these tables.

Which decoder can follow which encoder block is read from the blocks' class attributes
(:class:`~ldwseg.models.unet.blocks.base.DownBlock`, :class:`~ldwseg.models.unet.blocks.base.UpBlock`):
an LDW up block reverses the LDW pool of its level and ``ldw-detail`` also takes that
pool's stored subbands; ``unpool-detail`` takes the residual that ``maxpool-detail`` stores
(:mod:`~ldwseg.models.unet.blocks.bypass`).
"""

from __future__ import annotations

import math

from ...errors import ConfigError, check_choice
from ..layers.options import PoolOptions
from .blocks.base import DownBlock, UpBlock
from .blocks.bypass import MaxPoolDetailDown, ResidualUp
from .blocks.controls import AvgPoolDown, BlurPoolDown, ShuffleUp, SpaceToDepthDown, StridedConvDown
from .blocks.designs import (
    LDWBandMixDown,
    LDWGroupedDown,
    LDWLowBandDown,
    LDWMaxBlurDown,
    LDWReduceFirstDown,
    LDWShortcutDown,
    SPDBandMixDown,
    SPDGroupedDown,
    SPDReduceFirstDown,
    SPDShortcutDown,
)  # fmt: skip
from .blocks.ldw import LDWAllBandsDown, LDWDetailUp, LDWUp
from .blocks.maxpool import DeconvUp, MaxPoolDown

__all__ = [
    "DOWNSAMPLERS", "UPSAMPLERS", "check_down_options", "check_pairing", "create_down", "create_up",
    "downs_for", "get_down", "get_up", "ups_for",
]  # fmt: skip

DOWNSAMPLERS: dict[str, type[DownBlock]] = {
    "maxpool": MaxPoolDown,
    "ldw": LDWAllBandsDown,
    "avgpool": AvgPoolDown,
    "conv": StridedConvDown,
    "blurpool": BlurPoolDown,
    "spd": SpaceToDepthDown,
    "ldw-ll": LDWLowBandDown,
    "ldw-maxblur": LDWMaxBlurDown,
    "ldw-hwd": LDWBandMixDown,
    "spd-hwd": SPDBandMixDown,
    "ldw-grouped": LDWGroupedDown,
    "spd-grouped": SPDGroupedDown,
    "ldw-efficient": LDWReduceFirstDown,
    "spd-efficient": SPDReduceFirstDown,
    "ldw-shortcut": LDWShortcutDown,
    "spd-shortcut": SPDShortcutDown,
    "maxpool-detail": MaxPoolDetailDown,
}
"""Encoder blocks: ``(in_channels, out_channels)``, halving the size. The controls are in
:mod:`~ldwseg.models.unet.blocks.controls`, the equal-parameter LDW designs and their twins in
:mod:`~ldwseg.models.unet.blocks.designs`."""

UPSAMPLERS: dict[str, type[UpBlock]] = {
    "deconv": DeconvUp, "ldw": LDWUp, "ldw-detail": LDWDetailUp, "shuffle": ShuffleUp, "unpool-detail": ResidualUp,
}  # fmt: skip
"""Decoder blocks: ``(in_channels, skip_channels, out_channels)``, restoring the skip's size.
The :class:`~ldwseg.models.unet.blocks.ldw.LDWUp` ones reverse the encoder's LDW pool of their level."""


def get_down(name: str, *, label: str = "down") -> type[DownBlock]:
    """The down block class called ``name`` (a key of :data:`DOWNSAMPLERS`)."""
    return DOWNSAMPLERS[check_choice(label, name, DOWNSAMPLERS)]


def get_up(name: str, *, label: str = "up") -> type[UpBlock]:
    """The up block class called ``name`` (a key of :data:`UPSAMPLERS`)."""
    return UPSAMPLERS[check_choice(label, name, UPSAMPLERS)]


def _fits(down: type[DownBlock], up: type[UpBlock]) -> bool:
    has_bands = down.stores_bands and down.band_kind == up.band_kind
    return (down.ldw_pool or not up.needs_pool) and (has_bands or not up.needs_bands)


def ups_for(down: type[DownBlock]) -> list[str]:
    """The names of the up blocks that can follow the down block class ``down``."""
    return [name for name, up in UPSAMPLERS.items() if _fits(down, up)]


def downs_for(up: type[UpBlock]) -> list[str]:
    """The names of the down blocks that the up block class ``up`` can follow."""
    return [name for name, down in DOWNSAMPLERS.items() if _fits(down, up)]


def check_pairing(down: str, up: str, *, prefix: str = "") -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError`, listing the valid choices, if ``up`` cannot follow ``down``."""
    down_block, up_block = get_down(down, label=f"{prefix}down"), get_up(up, label=f"{prefix}up")
    if _fits(down_block, up_block):
        return
    raise ConfigError(
        f"{prefix}up={up!r} {_needs(up_block)}, but {prefix}down={down!r} {_lacks(down_block, up_block)}; "
        f"with {prefix}down={down} choose {prefix}up from {', '.join(ups_for(down_block))}, "
        f"or with {prefix}up={up} choose {prefix}down from {', '.join(downs_for(up_block))}"
    )


def _needs(up: type[UpBlock]) -> str:
    if not up.needs_pool:
        return f"takes the {up.band_kind} that the down block of its level stores"
    stored = f" with the {up.band_kind} that block stores" if up.needs_bands else ""
    return f"reverses the LDW pool of the down block of its level{stored}"


def _lacks(down: type[DownBlock], up: type[UpBlock]) -> str:
    if up.needs_pool and not down.ldw_pool:
        return "has no LDW pool"
    return f"stores no {up.band_kind}"


def _check_efficient(down: str, block: type[DownBlock], prefix: str) -> None:
    if block.reduces:
        raise ConfigError(
            f"{prefix}down={down!r} reduces the channels before its split already; set {prefix}efficient=false"
        )
    if "efficient" not in block.options:
        takes = [name for name, other in DOWNSAMPLERS.items() if "efficient" in other.options]
        raise ConfigError(
            f"{prefix}efficient=true reduces the channels before the 2x2 split of {prefix}down={', '.join(takes)}; "
            f"{prefix}down={down!r} has no such split, set {prefix}efficient=false"
        )


def check_down_options(down: str, *, efficient: bool, base_width: int, prefix: str = "") -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError` if ``down`` cannot take these options.

    ``efficient`` needs a block with a 1x1 reduction before its split and ``base_width``
    divisible by 4, as does a block that always reduces (``ldw-efficient``); a block whose
    output channels must be a multiple of ``m`` needs ``2 * base_width`` (the first
    level's) divisible by ``m``.
    """
    block = get_down(down, label=f"{prefix}down")
    if efficient:
        _check_efficient(down, block, prefix)
        if base_width % 4:
            # level i pools base_width * 2^i / 4 channels
            raise ConfigError(f"{prefix}efficient needs {prefix}base_width divisible by 4, got {base_width}")
    if block.reduces and base_width % 4:
        raise ConfigError(
            f"{prefix}down={down!r} needs input channels divisible by 4, but the first level "
            f"has {prefix}base_width = {base_width}; use a {prefix}base_width divisible by 4"
        )
    if (2 * base_width) % block.out_multiple:
        raise ConfigError(
            f"{prefix}down={down!r} needs output channels divisible by {block.out_multiple}, but the first level "
            f"has 2 * {prefix}base_width = {2 * base_width}; use a {prefix}base_width divisible by "
            f"{block.out_multiple // math.gcd(block.out_multiple, 2)}"
        )


def create_down(
    name: str, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions(), efficient: bool = False
) -> DownBlock:
    """The down block ``name`` from ``in_channels`` to ``out_channels``.

    ``pool`` and ``efficient`` go to the blocks that take them (their ``options``);
    ``efficient=True`` for a block without it is an error.

    Example:
        >>> create_down("ldw", 8, 16, pool=PoolOptions(wavelet="db2")).pool
        LDWPool2d(8, wavelet='db2', kernel_size=4, constraint='orthogonal')
        >>> create_down("avg", 8, 16)
        Traceback (most recent call last):
        ...
        ldwseg.errors.ConfigError: down='avg' is not valid; choose one of maxpool, ldw, avgpool, ...
    """
    block = get_down(name)
    if efficient:
        _check_efficient(name, block, "")
    given = {"pool": pool, "efficient": efficient}
    return block(in_channels, out_channels, **{option: given[option] for option in block.options})


def create_up(
    name: str, in_channels: int, skip_channels: int, out_channels: int, *, paired: DownBlock, skip: bool = True
) -> UpBlock:
    """The up block ``name``; ``paired`` is the down block of the same level.

    An LDW up block reverses ``paired``'s pool, so ``paired`` must own one (and store
    its subbands, for ``ldw-detail``); ``unpool-detail`` needs the residual of a
    ``maxpool-detail`` block.
    """
    block = get_up(name)
    needs = block.needs_pool or block.needs_bands
    if needs and not (isinstance(paired, DownBlock) and _fits(type(paired), block)):
        valid = ", ".join(ups_for(type(paired) if isinstance(paired, DownBlock) else DownBlock))
        raise ConfigError(
            f"up={name!r} {_needs(block)}, but the down block of this level is {type(paired).__name__}; "
            f"choose up from {valid}, or down from {', '.join(downs_for(block))}"
        )
    if not block.needs_pool:
        return block(in_channels, skip_channels, out_channels, skip=skip)
    return block(in_channels, skip_channels, out_channels, pool=paired.pool, skip=skip)
