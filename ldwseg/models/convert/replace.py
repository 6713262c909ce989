"""Put LDW pooling into any CNN: :func:`convert` replaces its downsampling layers.

Each replaced layer keeps its contract: the same input and output channels and, for
every input size the original accepts, the same output size. Three layer kinds are
replaced, each by a block that starts (at initialisation) close to the original, so
pretrained weights stay useful:

* ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (stride 2) -> :class:`LDWPoolMix`: LDW pool
  (``C -> 4C``), then a 1x1 conv ``4C -> C`` initialised to ``LL / (sum W^L)^2``. That is
  the 2x2 mean for Haar (``LL = 2 * mean`` in the orthonormal convention) and a
  low-pass of DC gain 1 for longer wavelets: an *average*-pool start, also for max pools.
* a stride-2 1x1 conv ``W`` (ResNet's shortcut, the paper's section 3.4) ->
  :class:`LDWPoolMix` on its input (``4 C_in -> C_out``, same groups and bias). The
  conv samples ``x[2i, 2j]``; with Haar the four bands are an orthonormal basis of each
  2x2 block, so ``x[2i, 2j] = (LL + LH + HL + HH) / 2`` and the block starts *exactly*
  equal to the conv.
* any other stride-2 conv (``k x k``, grouped or depthwise) -> :class:`LDWStridedConv`:
  the same conv at stride 1, then LDW pooling with a per-channel 1x1 mix of the four
  bands. With Haar it samples the stride-1 output at even positions: *exactly* the
  original conv (at four times its cost). This is BlurPool's recipe with a learnable
  wavelet in place of the fixed blur.

With a filter longer than 2 taps a 1x1 mix of the bands cannot pick one sample, so the
conv blocks start as the low-pass of the pools (anti-aliased subsampling).

Sizes: LDW pooling returns ``ceil(H / 2)``. A stride-2 layer returns ``(H + c) // 2`` for
a constant ``c`` set by its kernel, padding, dilation and ``ceil_mode`` (``c = 1`` for
the ResNet stem pool ``(3, 2, 1)``, ``c = 0`` for ``MaxPool2d(2)``), so the block crops
its output to that size: it drops the last rows and columns the original does not
compute (for ``MaxPool2d(2)`` and odd ``H``, the row made from the replicated padding).
A layer with ``c > 1`` (more outputs than ``ceil(H / 2)``) is refused.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ...errors import ConfigError, check_choice
from ..layers.options import PoolOptions, check_pool
from .blocks import CONVERT_POOL, LDWPoolMix, LDWStridedConv, size_offset

__all__ = ["STRIDED_CONV", "LDWPoolMix", "LDWStridedConv", "convert", "converted_layers"]

logger = logging.getLogger(__name__)

STRIDED_CONV = ("none", "1x1", "all")
"""Which stride-2 convs :func:`convert` replaces: none, the pointwise ones, or all."""


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


@dataclass
class _Plan:
    """What :func:`convert` does with one candidate layer: a replacement, or why not."""

    path: str
    layer: nn.Module
    build: Callable[[], nn.Module] | None = None
    reason: str = ""


def _declared(module: nn.Module, attrs: tuple[str, ...]) -> int | None:
    for attr in attrs:
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def _structural_channels(model: nn.Module) -> dict[int, int]:
    """Channels of each pool in ``model`` read from the leaf modules around it.

    The next leaf that declares its input (``in_channels``, ``num_features``) wins, else the
    last leaf before that declares its output (``out_channels``, ``num_features``,
    ``num_channels``), in registration order.
    """
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    found: dict[int, int] = {}
    for i, m in enumerate(leaves):
        if not isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            continue
        after = (_declared(n, ("in_channels", "num_features")) for n in leaves[i + 1 :])
        before = (_declared(n, ("out_channels", "num_features", "num_channels")) for n in reversed(leaves[:i]))
        channels = next((c for c in after if c is not None), None) or next((c for c in before if c is not None), None)
        if channels is not None:
            found[id(m)] = channels
    return found


def _recorded_channels(model: nn.Module, example_input: Tensor) -> dict[int, list[int]]:
    """Input channels of every call of each pool during one forward pass of ``example_input``."""
    calls: dict[int, list[int]] = {}
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]

    def record(module: nn.Module, args: tuple) -> None:
        calls.setdefault(id(module), []).append(int(args[0].shape[1]))

    modes = {m: m.training for m in model.modules()}
    hooks = [p.register_forward_pre_hook(record) for p in pools]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return calls


def _plan_pool(path: str, layer: nn.Module, channels: int | list[int] | None, options: dict) -> _Plan:
    base = nn.MaxPool2d if isinstance(layer, nn.MaxPool2d) else nn.AvgPool2d
    kernel, stride, padding = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
    dilation = _pair(getattr(layer, "dilation", 1))
    plan = _Plan(path, layer)
    if type(layer).forward is not base.forward:
        plan.reason = f"{type(layer).__name__} has its own forward, so its output size cannot be checked"
    elif getattr(layer, "return_indices", False):
        plan.reason = "return_indices=True, and LDW pooling has no indices to return"
    elif stride != (2, 2):
        plan.reason = f"stride {stride}: LDW pooling halves the size, so only stride 2 can be replaced"
    elif dilation != (1, 1):
        plan.reason = f"dilation {dilation}: only dilation 1 is supported"
    elif isinstance(channels, list):
        plan.reason = (
            f"it runs {len(channels)} times in one forward pass (on {channels} channels); an LDW block has "
            "its own filters and 1x1 conv, so give each use its own module"
        )
    elif channels is None:
        plan.reason = "its channel count cannot be read from the modules around it; pass example_input=..."
    else:
        offset = [size_offset(k, p, 1, layer.ceil_mode) for k, p in zip(kernel, padding)]
        if any(c is None or c > 1 for c in offset):
            plan.reason = (
                f"kernel {kernel}, padding {padding}, ceil_mode={layer.ceil_mode} give more rows or columns "
                "than LDW pooling's ceil(H/2)"
            )
        else:
            sample = kernel == (1, 1)  # a 1x1 pool subsamples: x[2i, 2j]
            plan.build = lambda: _downsample(
                channels, channels, None, None, (offset[0], offset[1]), sample, layer, options
            )
    return plan


def _plan_conv(path: str, layer: nn.Conv2d, mode: str, options: dict) -> _Plan | None:
    stride = _pair(layer.stride)
    pointwise = _pair(layer.kernel_size) == (1, 1) and layer.padding in ("valid", (0, 0))
    if stride == (1, 1) or mode == "none" or (mode == "1x1" and not pointwise):
        return None
    plan = _Plan(path, layer)
    if type(layer).forward is not nn.Conv2d.forward:
        plan.reason = f"{type(layer).__name__} has its own forward, so its output size cannot be checked"
    elif stride != (2, 2):
        plan.reason = f"stride {stride}: LDW pooling halves the size, so only stride 2 can be replaced"
    elif pointwise:
        bias = None if layer.bias is None else layer.bias.detach()
        plan.build = lambda: _downsample(
            layer.in_channels, layer.out_channels, layer.weight.detach(), bias, (1, 1), True, layer, options
        )
    else:
        plan.build = lambda: _strided_conv(layer, options)
    return plan


def _downsample(
    in_channels: int,
    out_channels: int,
    weight: Tensor | None,
    bias: Tensor | None,
    size_offset: tuple[int, int],
    sample: bool,
    layer: nn.Module,
    options: dict,
) -> LDWPoolMix:
    groups = getattr(layer, "groups", 1)
    block = LDWPoolMix(
        in_channels,
        out_channels,
        groups=groups,
        bias=bias is not None,
        size_offset=size_offset,
        replaces=repr(layer),
        **options,
    )
    if weight is None:
        weight = torch.eye(out_channels)
    block.start_as(weight, bias, sample=sample)
    return block


def _strided_conv(layer: nn.Conv2d, options: dict) -> LDWStridedConv:
    conv = copy.deepcopy(layer)
    conv.stride = (1, 1)
    return LDWStridedConv(conv, replaces=repr(layer), **options)


def convert(
    model: nn.Module,
    *,
    pool: PoolOptions = CONVERT_POOL,
    maxpool: bool = True,
    avgpool: bool = False,
    strided_conv: Literal["none", "1x1", "all"] = "none",
    example_input: Tensor | None = None,
    skip_unsupported: bool = False,
    inplace: bool = False,
) -> nn.Module:
    """Replace the downsampling layers of ``model`` by LDW blocks that keep their contract.

    Every replaced layer keeps its input and output channels and its output size for
    every input size; at initialisation pools start as the 2x2 average (Haar) and
    strided convs as themselves (exactly, with Haar). The module docstring says what
    each block computes. The replaced paths are logged (INFO) and listed by
    :func:`converted_layers`; :func:`~ldwseg.wavelet_loss` finds the new pools.

    Args:
        model: the network; it may itself be one pool or conv.
        pool: the options of every LDW pool (:class:`~ldwseg.models.PoolOptions`: initial
            wavelet, kernel size, constraint, energy attention, learned or fixed filters);
            by default Haar on the orthogonal constraint without attention. With attention
            (Eqs. 16-17) on the subbands its gates start at 1/2 and the 1x1 conv is doubled,
            so the start is unchanged.
        maxpool: replace ``nn.MaxPool2d`` layers.
        avgpool: replace ``nn.AvgPool2d`` layers (adaptive and global pools never are).
        strided_conv: which stride-2 ``nn.Conv2d`` to replace: ``"none"``, ``"1x1"`` (the
            pointwise ones, such as ResNet's shortcut: the paper's section 3.4) or ``"all"``
            (also ``k x k``, grouped and depthwise ones, run at stride 1 before the pool).
        example_input: a batch the model accepts; when given, the model runs once (eval
            mode, no gradients) and each pool's channels are recorded from its input.
            Without it they are read from the modules next to the pool (the next one's
            ``in_channels``, else the previous one's ``out_channels``), which holds for
            torchvision, timm and smp backbones; pass it for models whose modules are not
            registered in the order they run, or that reuse one pool module.
        skip_unsupported: leave layers that cannot be replaced (logging a warning)
            instead of raising.
        inplace: modify ``model`` itself; by default a deep copy is converted.

    Returns:
        The converted model (``model`` itself when ``inplace``).

    Raises:
        ConfigError: an option is invalid, or a candidate layer cannot be replaced
            (stride other than 2, dilation, ``return_indices=True``, more outputs than
            ``ceil(H/2)``, unknown channels, a module run several times): one line naming
            every such layer's path and why, unless ``skip_unsupported``. Nothing is
            changed then.

    Example:
        >>> import torchvision
        >>> net = convert(torchvision.models.resnet18(weights=None), strided_conv="1x1")
        >>> list(converted_layers(net))
        ['maxpool', 'layer2.0.downsample.0', 'layer3.0.downsample.0', 'layer4.0.downsample.0']
        >>> net(torch.randn(1, 3, 67, 81)).shape
        torch.Size([1, 1000])
        >>> convert(nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(3)))
        Traceback (most recent call last):
        ...
        ldwseg.errors.ConfigError: cannot convert '1' (MaxPool2d): stride (3, 3): LDW pooling halves ...
    """
    check_choice("strided_conv", strided_conv, STRIDED_CONV)
    check_pool(pool, prefix="pool.")
    options = {"pool": pool}
    if not inplace:
        model = copy.deepcopy(model)

    kinds = (nn.MaxPool2d,) * maxpool + (nn.AvgPool2d,) * avgpool
    plans = _plans(model, kinds, strided_conv, example_input, options)
    refused = [p for p in plans if p.build is None]
    if refused and not skip_unsupported:
        reasons = "; ".join(f"'{p.path}' ({type(p.layer).__name__}): {p.reason}" for p in refused)
        raise ConfigError(f"cannot convert {reasons}; pass skip_unsupported=True to leave such layers as they are")
    for p in refused:
        logger.warning("left '%s' (%s): %s", p.path, type(p.layer).__name__, p.reason)

    like = next((t for t in model.parameters() if t.is_floating_point()), None)  # the blocks' device and dtype
    blocks = [(p, p.build()) for p in plans if p.build is not None]  # all built before the model changes
    for p, block in blocks:
        if like is not None:
            block.to(like)
        if not p.path:
            model = block
        else:
            parent, _, name = p.path.rpartition(".")
            setattr(model.get_submodule(parent), name, block)
        logger.info("replaced '%s' %s by %s", p.path, p.layer, type(block).__name__)
    logger.info("LDW blocks replace %d of %d candidate layers", len(blocks), len(plans))
    return model


def _plans(
    model: nn.Module,
    kinds: tuple[type[nn.Module], ...],
    strided_conv: str,
    example_input: Tensor | None,
    options: dict,
) -> list[_Plan]:
    """What to do with every candidate layer of ``model``, in registration order (shared ones at each path)."""
    channels: dict[int, int | list[int]] = dict(_structural_channels(model))
    if example_input is not None:
        recorded = _recorded_channels(model, example_input)
        channels.update({key: calls[0] if len(calls) == 1 else calls for key, calls in recorded.items()})
    plans = []
    for path, layer in model.named_modules(remove_duplicate=False):
        if isinstance(layer, kinds):
            plans.append(_plan_pool(path, layer, channels.get(id(layer)), options))
        elif isinstance(layer, nn.Conv2d):
            plan = _plan_conv(path, layer, strided_conv, options)
            if plan is not None:
                plans.append(plan)
    return plans


def converted_layers(model: nn.Module) -> dict[str, str]:
    """The paths of the LDW blocks :func:`convert` put into ``model``, each with the layer it replaced."""
    return {
        path: m.replaces
        for path, m in model.named_modules()
        if isinstance(m, (LDWPoolMix, LDWStridedConv)) and m.replaces
    }
