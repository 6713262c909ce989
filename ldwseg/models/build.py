"""The network of a run by ``model.arch``: the paper's UNet, or an smp architecture.

:func:`build_network` is the one place that turns a spec (a config's ``model`` section)
into a model: training (:func:`ldwseg.engine.build.build_model`) and every command that
rebuilds a checkpoint (:func:`ldwseg.engine.checkpoints.load_run_model`) go through it,
so a checkpoint's stored config is all it takes to rebuild its network.

* ``"unet"``: :class:`~ldwseg.models.UNet`, built by :func:`~ldwseg.models.build_unet`
  from ``down``, ``up``, ``base_width``, ``depth``, ``skip``, ``efficient`` and the pool
  options; ``encoder`` and ``encoder_weights`` are not used.
* ``"smp-*"`` (:data:`~ldwseg.models.smp.SMP_ARCHS`): an smp model built by
  :func:`~ldwseg.models.smp.build_smp` from ``encoder``, ``encoder_weights``, ``down``
  (``ldw`` or ``maxpool``) and the pool options; ``up``, ``base_width`` and ``depth`` are
  not used.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from ..errors import check_choice
from .smp import SMP_ARCHS, SMPSegmenter, SMPSpec, build_smp, check_smp_spec
from .unet.network import UNet, UNetSpec, build_unet, check_unet_spec

__all__ = ["ARCHS", "NetworkSpec", "build_network", "check_network_spec", "input_multiple"]

ARCHS = ("unet", *SMP_ARCHS)
"""The values of ``model.arch``: the paper's UNet, then the smp architectures."""


class NetworkSpec(UNetSpec, SMPSpec, Protocol):
    """A flat description of a network, such as :class:`ldwseg.config.ModelConfig`: the fields of
    :class:`~ldwseg.models.UNetSpec` plus ``arch``, ``encoder`` and ``encoder_weights``."""


def check_network_spec(spec: NetworkSpec, *, prefix: str = "") -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError` if :func:`build_network` cannot build ``spec``.

    Only the fields the arch uses are checked (the module docstring lists them);
    ``prefix`` goes before each field's name in the messages (``"model."``).
    """
    check_choice(f"{prefix}arch", spec.arch, ARCHS)
    if spec.arch == "unet":
        check_unet_spec(spec, prefix=prefix)
    else:
        check_smp_spec(spec, prefix=prefix)


def build_network(spec: NetworkSpec, in_channels: int, out_channels: int, *, pretrained: bool = True) -> nn.Module:
    """The network ``spec`` describes, from ``in_channels`` image channels to ``out_channels`` maps.

    ``pretrained=False`` never loads ``spec.encoder_weights`` (a checkpoint's own weights
    replace them). Both kinds map ``(N, in_channels, H, W)`` to ``(N, out_channels, H, W)``
    for any ``H, W``.

    Example:
        >>> from ldwseg.config import ModelConfig
        >>> type(build_network(ModelConfig(base_width=4, depth=2), 3, 2)).__name__
        'UNet'
    """
    if spec.arch == "unet":
        return build_unet(spec, in_channels, out_channels)
    check_choice("model.arch", spec.arch, ARCHS)
    return build_smp(spec, in_channels, out_channels, pretrained=pretrained)


def input_multiple(model: nn.Module) -> int:
    """The stride that tiled inference aligns its windows on: ``2**depth`` for a :class:`~ldwseg.models.UNet`,
    the encoder's output stride for an :class:`~ldwseg.models.smp.SMPSegmenter` (32; 16 for DeepLabV3+).

    Both take any input size; an smp network pads it to this multiple.
    """
    if isinstance(model, SMPSegmenter):
        return model.multiple
    if isinstance(model, UNet):
        return 2 ** len(model.downs)
    raise TypeError(f"expected a UNet or an SMPSegmenter (what build_network builds), got {type(model).__name__}")
