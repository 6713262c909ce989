"""The UNet of the paper's segmentation experiment, with any of the named down and up blocks, and its checks."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from ...errors import ConfigError, check_choice
from ...pooling import CONSTRAINTS
from ..layers.norm import NORMS, replace_batchnorm
from ..layers.options import PoolOptions, PoolSpec, check_pool
from ..sharing import PretrainedMixin
from .blocks.base import DoubleConv
from .registry import check_down_options, check_pairing, create_down, create_up, get_down

__all__ = ["MAX_PARAMETERS", "UNet", "UNetSpec", "build_unet", "check_unet", "check_unet_spec", "unet_parameters"]

MAX_PARAMETERS = 1_000_000_000
"""The largest UNet (in parameters, estimated by :func:`unet_parameters`) that :func:`check_unet`
accepts: a larger one would exhaust memory while it is built rather than fail with a message."""


class UNet(PretrainedMixin, nn.Module):
    """Ronneberger's UNet: a double-conv stem, ``depth`` down blocks, ``depth`` up blocks, a 1x1 head.

    Level ``i`` has ``base_width * 2^i`` channels. Up block ``j`` works at level
    ``depth - 1 - j`` and, for LDW, reverses the pool of down block ``depth - 1 - j``.

    Args:
        in_channels: image channels.
        out_channels: classes (segmentation) or image channels (reconstruction).
        base_width: channels of the first level.
        depth: number of downsamplings (4 in the paper).
        down: a key of :data:`~ldwseg.models.DOWNSAMPLERS`: ``"maxpool"``, ``"ldw"``, a
            control (:mod:`~ldwseg.models.unet.blocks.controls`) or an LDW design
            (:mod:`~ldwseg.models.unet.blocks.designs`).
        up: a key of :data:`~ldwseg.models.UPSAMPLERS`: ``"deconv"``, ``"shuffle"``,
            ``"ldw"`` (reverse LDW pooling paired with the encoder pool of the same level)
            or ``"ldw-detail"`` (the decoder gives LL, the encoder the detail bands); the
            LDW ones need a down block with an LDW pool (:func:`check_unet` lists them).
        skip: concatenate encoder features in the decoder (off for the autoencoder,
            so that everything passes through the pools and their reverse pools).
        efficient: 1x1 conv C -> C/4 before each 2x2 split (paper section 3.4) of the
            blocks that have one (``ldw``, ``spd``, ...); needs ``base_width`` divisible by 4.
        norm: ``"batch"`` (BatchNorm after every conv) or ``"affine"`` (a learned
            per-channel scale and shift in its place, :mod:`~ldwseg.models.layers.norm`).
        pool: the options of every LDW pool.

    Raises:
        ConfigError: an argument is invalid (see :func:`check_unet`).

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` for any ``H, W >= 1``.

    Example:
        >>> import torch
        >>> model = UNet(3, 5, base_width=4, depth=2, pool=PoolOptions(wavelet="db2", constraint="orthogonal"))
        >>> model(torch.randn(1, 3, 33, 50)).shape
        torch.Size([1, 5, 33, 50])
        >>> UNet(3, 5, down="maxpool", up="ldw")
        Traceback (most recent call last):
        ...
        ldwseg.errors.ConfigError: up='ldw' reverses the LDW pool of the down block of its level, ...
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        base_width: int = 64,
        depth: int = 4,
        down: str = "ldw",
        up: str = "ldw",
        skip: bool = True,
        efficient: bool = False,
        norm: str = "batch",
        pool: PoolOptions = PoolOptions(),
    ) -> None:
        super().__init__()
        check_unet(base_width=base_width, depth=depth, down=down, up=up, efficient=efficient, pool=pool, norm=norm)
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            create_down(down, cin, cout, pool=pool, efficient=efficient) for cin, cout in zip(widths[:-1], widths[1:])
        )
        self.ups = nn.ModuleList(
            create_up(up, widths[level + 1], widths[level], widths[level], paired=self.downs[level], skip=skip)
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        if norm == "affine":
            replace_batchnorm(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        skips, bands = [], []
        for block in self.downs:
            skips.append(x)
            x, sub = block(x)
            bands.append(sub)
        for block in self.ups:
            x = block(x, skips.pop(), bands.pop())
        return self.head(x)


def unet_parameters(base_width: int, depth: int) -> float:
    """About how many weights a UNet has: per level ``i -> i+1`` two double convs (down and up),
    ``2 * 9 * (c_i c_{i+1} + c_{i+1}^2)``, plus ``9 * 4 c_0^2`` for the stem.

    A float, so that absurd widths and depths (capped at 64 levels) cannot overflow.
    """
    widths = [float(base_width) * 2.0**i for i in range(min(depth, 64) + 1)]
    levels = sum(2 * 9 * (cin * cout + cout * cout) for cin, cout in zip(widths[:-1], widths[1:]))
    return levels + 9 * 4 * widths[0] ** 2


def check_unet(
    *,
    base_width: int,
    depth: int,
    down: str,
    up: str,
    efficient: bool,
    pool: PoolOptions,
    norm: str = "batch",
    prefix: str = "",
) -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError` if :class:`UNet` cannot be built from these arguments.

    ``prefix`` goes before each argument's name in the messages (``"model."`` for the
    config section). The pool's filters are checked only when the down blocks have an
    LDW pool. A pairing of ``down`` and ``up`` that cannot work is refused with the
    valid choices listed (:func:`~ldwseg.models.unet.registry.check_pairing`).
    """
    down_block = get_down(down, label=f"{prefix}down")
    check_pairing(down, up, prefix=prefix)
    check_choice(f"{prefix}norm", norm, NORMS)
    for name, value in (("base_width", base_width), ("depth", depth)):
        if value < 1:
            raise ConfigError(f"{prefix}{name} must be >= 1, got {value}")
    check_down_options(down, efficient=efficient, base_width=base_width, prefix=prefix)
    size = unet_parameters(base_width, depth)
    if size > MAX_PARAMETERS:
        raise ConfigError(
            f"{prefix}base_width={base_width} with {prefix}depth={depth} makes a UNet of about {size:.1e} "
            f"parameters, more than the {MAX_PARAMETERS:.0e} ldwseg allows (the paper's has about 5e7); lower "
            f"{prefix}depth or {prefix}base_width"
        )
    if down_block.ldw_pool:
        check_pool(pool, prefix=prefix)
    else:  # no pool reads them, but a value no pool could take is still refused
        check_choice(f"{prefix}constraint", pool.constraint, CONSTRAINTS)


class UNetSpec(PoolSpec, Protocol):
    """A flat description of a UNet, such as :class:`ldwseg.config.ModelConfig`: the
    arguments of :class:`UNet` with the fields of :class:`PoolOptions` in place of ``pool``."""

    down: str
    up: str
    base_width: int
    depth: int
    skip: bool
    efficient: bool
    norm: str


def check_unet_spec(spec: UNetSpec, *, prefix: str = "") -> None:
    """:func:`check_unet` for the UNet that :func:`build_unet` makes of ``spec``."""
    check_unet(
        base_width=spec.base_width,
        depth=spec.depth,
        down=spec.down,
        up=spec.up,
        efficient=spec.efficient,
        pool=PoolOptions.of(spec),
        norm=spec.norm,
        prefix=prefix,
    )


def build_unet(spec: UNetSpec, in_channels: int, out_channels: int) -> UNet:
    """The UNet that ``spec`` (for example a config's ``model`` section) describes."""
    return UNet(
        in_channels,
        out_channels,
        base_width=spec.base_width,
        depth=spec.depth,
        down=spec.down,
        up=spec.up,
        skip=spec.skip,
        efficient=spec.efficient,
        norm=spec.norm,
        pool=PoolOptions.of(spec),
    )
