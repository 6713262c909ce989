"""segmentation_models_pytorch (smp) networks, optionally with LDW pooling in their encoder.

``model.arch`` names one of :data:`SMP_ARCHS`; ``model.encoder`` is any smp encoder
(``segmentation_models_pytorch.encoders.get_encoder_names()``, or ``tu-<timm model>``) and
``model.encoder_weights`` its pretrained weights (``None``: random initialisation).

``model.down`` chooses the encoder's downsampling (:data:`SMP_DOWN`): ``"maxpool"`` keeps
the encoder as smp builds it; ``"ldw"`` (or any LDW design of the UNet, such as the default
``"ldw-efficient"``) converts it with :func:`~ldwseg.models.convert.replace.convert`:
every stride-2 max or average pool and every stride-2 conv becomes an LDW block with the
pool options of the spec (wavelet, kernel size, constraint, attention, learned filters).
A layer that ``convert`` cannot replace is left as it is (with a warning); an encoder
with none it can replace is refused. The decoders keep their own upsampling
(:data:`DECODER_UPSAMPLING`), so the UNet's ``up``, ``base_width`` and ``depth`` are not
used.

Most of smp's models need an input whose height and width are divisible by the encoder's
output stride; :class:`SMPSegmenter` pads their inputs up to it, so every network takes
any size, like the UNet.
"""

from __future__ import annotations

import difflib
from typing import Any, Protocol

from torch import Tensor, nn

from ..errors import ConfigError, LDWSegError, check_choice
from .convert.replace import convert, converted_layers
from .layers.options import PoolOptions, PoolSpec, check_pool
from .layers.padding import run_padded
from .sharing import PretrainedMixin
from .unet.registry import DOWNSAMPLERS

__all__ = [
    "DECODER_UPSAMPLING", "SMP_ARCHS", "SMP_DOWN", "EncoderWeightsError", "SMPSegmenter", "SMPSpec", "build_smp",
    "check_smp_spec",
]  # fmt: skip

SMP_ARCHS = {
    "smp-unet": "Unet",
    "smp-unetplusplus": "UnetPlusPlus",
    "smp-fpn": "FPN",
    "smp-deeplabv3plus": "DeepLabV3Plus",
}
"""The ``model.arch`` names of the smp architectures, each with its smp class."""

DECODER_UPSAMPLING = {
    "smp-unet": "nearest-neighbour interpolation to each skip's size (2x), then two 3x3 convs per stage",
    "smp-unetplusplus": "nearest-neighbour 2x interpolation in every node of the nested decoder",
    "smp-fpn": "nearest-neighbour 2x in the top-down pathway, bilinear 2x (align_corners) in the segmentation "
    "blocks, bilinear 4x in the head",
    "smp-deeplabv3plus": "bilinear 4x (align_corners) of the ASPP output to the stride-4 features, bilinear 4x "
    "in the head",
}
"""What upsamples in each smp decoder (smp's defaults; none of it is learned)."""

SMP_DOWN = ("ldw", "maxpool")
"""The ``model.down`` values of an smp arch: convert the encoder to LDW blocks, or keep it as smp builds it.
The UNet's other LDW designs (``ldw-efficient``, the default, ``ldw-grouped``, ...) convert it as ``ldw`` does."""


def converts(down: str) -> bool:
    """Whether ``model.down=down`` converts an smp encoder: ``ldw`` or any UNet down block with an LDW pool."""
    block = DOWNSAMPLERS.get(down)
    return down == "ldw" or (block is not None and block.ldw_pool)


_EXAMPLE_ENCODERS = "resnet18, resnet34, resnet50, mobilenet_v2, efficientnet-b0"


class EncoderWeightsError(LDWSegError):
    """The pretrained encoder weights cannot be downloaded (or read from the cache)."""


class SMPSpec(PoolSpec, Protocol):
    """What :func:`build_smp` reads of a network spec such as :class:`ldwseg.config.ModelConfig`."""

    arch: str
    encoder: str
    encoder_weights: str | None
    down: str
    skip: bool
    efficient: bool
    norm: str


class SMPSegmenter(PretrainedMixin, nn.Module):
    """An smp segmentation model that takes images of any size.

    smp's models need a height and width divisible by :attr:`multiple`, the encoder's
    output stride (32; 16 for DeepLabV3+), except those that say otherwise
    (``requires_divisible_input_shape = False``: smp's Unet since smp 0.5, whose decoder
    interpolates to each skip's size). For the others (:attr:`pads`) the input is
    zero-padded at the bottom and right up to the next multiple and the logits are cropped
    back; zero is the data set's mean colour once the images are normalised. The padding
    amounts are computed from the input's shape, so a traced (ONNX) model keeps height and
    width symbolic.

    Args:
        model: an smp ``SegmentationModel`` without a classification head (its encoder
            possibly converted by :func:`~ldwseg.models.convert.replace.convert`).

    Shape:
        ``(N, C, H, W) -> (N, classes, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = model
        self.multiple = int(model.encoder.output_stride)
        self.pads = bool(getattr(model, "requires_divisible_input_shape", True))

    def forward(self, x: Tensor) -> Tensor:
        return run_padded(self.net, x, self.multiple) if self.pads else self.net(x)


def _first_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _check_encoder(name: str, prefix: str) -> None:
    if name.startswith("tu-"):
        import timm

        if not timm.is_model(name[3:]):
            raise ConfigError(
                f"{prefix}encoder={name!r}: timm has no model {name[3:]!r}; tu-<name> takes a name of "
                "timm.list_models()"
            )
        return
    from segmentation_models_pytorch.encoders import get_encoder_names

    names = get_encoder_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{prefix}encoder={name!r} is not an smp encoder{hint}; choose one of "
            f"segmentation_models_pytorch.encoders.get_encoder_names() ({_EXAMPLE_ENCODERS}, ...) "
            "or tu-<a timm model name>"
        )


def _check_weights(encoder: str, weights: str | None, prefix: str) -> None:
    if weights is None:
        return
    if encoder.startswith("tu-"):
        available = ["imagenet"]  # timm picks the weights by the name's tag: tu-<model>.<tag>
    else:
        from segmentation_models_pytorch.encoders import encoders

        available = list(encoders[encoder]["pretrained_settings"])
    if weights not in available:
        raise ConfigError(
            f"{prefix}encoder_weights={weights!r} is not available for {prefix}encoder={encoder}; choose null "
            f"(random initialisation) or one of {', '.join(available)}"
        )


def check_smp_spec(spec: SMPSpec, *, prefix: str = "") -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError` if :func:`build_smp` cannot build ``spec``.

    Checks the arch, the encoder name and its weights, ``down`` (one of :data:`SMP_DOWN`),
    the UNet options that an smp network cannot honour (``skip=False``, ``efficient=True``,
    ``norm`` other than ``"batch"``)
    and, for ``down="ldw"``, the pool options. Whether smp's architecture accepts the
    encoder (DeepLabV3+ needs one that can be dilated) is known only once it is built.
    """
    arch = check_choice(f"{prefix}arch", spec.arch, SMP_ARCHS)
    if spec.down not in SMP_DOWN and not converts(spec.down):
        raise ConfigError(
            f"{prefix}down={spec.down!r} is a down block of {prefix}arch=unet; with {prefix}arch={arch} choose "
            f"{prefix}down=ldw (the encoder's pools and stride-2 convs become LDW blocks) or {prefix}down=maxpool "
            "(the encoder as smp builds it)"
        )
    if not spec.skip:
        raise ConfigError(
            f"{prefix}skip=false (the autoencoder of --task recon) needs {prefix}arch=unet: the decoder of "
            f"{arch} always takes the encoder's features; use {prefix}arch=unet or {prefix}skip=true"
        )
    if spec.efficient:
        raise ConfigError(
            f"{prefix}efficient=true reduces the channels before the UNet's 2x2 splits; {arch} has none, "
            f"set {prefix}efficient=false"
        )
    if spec.norm != "batch":
        raise ConfigError(
            f"{prefix}norm={spec.norm!r} replaces the UNet's BatchNorm; {arch} keeps its encoder's and decoder's "
            f"own, set {prefix}norm=batch"
        )
    _check_encoder(spec.encoder, prefix)
    _check_weights(spec.encoder, spec.encoder_weights, prefix)
    if converts(spec.down):
        check_pool(PoolOptions.of(spec), prefix=prefix)


def _smp_model(spec: SMPSpec, in_channels: int, out_channels: int, weights: Any) -> nn.Module:
    import segmentation_models_pytorch as smp

    cls = getattr(smp, SMP_ARCHS[spec.arch])
    try:
        return cls(encoder_name=spec.encoder, encoder_weights=weights, in_channels=in_channels, classes=out_channels)
    except OSError as exc:  # huggingface_hub's and timm's download and cache errors are OSErrors
        if weights is None:
            raise
        raise EncoderWeightsError(
            f"cannot download the {spec.encoder_weights} weights of encoder {spec.encoder} "
            f"({type(exc).__name__}: {_first_line(exc)}); connect to huggingface.co once (they are cached), or use "
            "--set model.encoder_weights=null to train without them"
        ) from None
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"model.arch={spec.arch} cannot use model.encoder={spec.encoder}: {_first_line(exc)}; choose another "
            "model.encoder"
        ) from None


def build_smp(spec: SMPSpec, in_channels: int, out_channels: int, *, pretrained: bool = True) -> SMPSegmenter:
    """The smp network ``spec`` describes, converted to LDW pooling for ``spec.down == "ldw"``.

    Args:
        spec: a checked spec (:func:`check_smp_spec`), e.g. a config's ``model`` section.
        in_channels: image channels.
        out_channels: classes.
        pretrained: load ``spec.encoder_weights`` (downloaded once, then cached by
            huggingface_hub); ``False`` builds the same network with random weights, for
            a checkpoint whose weights replace them (no download).

    Raises:
        EncoderWeightsError: the weights cannot be downloaded.
        ConfigError: the arch does not accept the encoder, or ``down="ldw"`` finds no
            layer of the encoder to replace.
    """
    weights = spec.encoder_weights if pretrained else None
    if weights is not None and spec.encoder.startswith("tu-"):
        weights = True  # smp's timm encoders take True for "the pretrained weights of the name's tag"
    model = _smp_model(spec, in_channels, out_channels, weights)
    if converts(spec.down):
        model.encoder = convert(
            model.encoder, pool=PoolOptions.of(spec), maxpool=True, avgpool=True, strided_conv="all",
            skip_unsupported=True, inplace=True,
        )  # fmt: skip
        if not converted_layers(model.encoder):
            raise ConfigError(
                f"model.down=ldw found no pool or stride-2 conv that ldwseg.convert can replace in encoder "
                f"{spec.encoder} (see the warnings above); use model.down=maxpool or another model.encoder"
            )
    return SMPSegmenter(model)
