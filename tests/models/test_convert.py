"""``convert``: LDW blocks in place of the downsampling layers of torchvision, timm and smp models.

Cheap to expensive: the size contract of every pool configuration, what each block
computes at initialisation, error messages, then whole models (shapes at even and odd
sizes, gradients, ``wavelet_loss``, safetensors, training steps on photos) and ONNX.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from skimage import data
from torch import Tensor, nn
from torch.testing import assert_close

from ldwseg import LDWPool2d, wavelet_loss
from ldwseg.errors import ConfigError
from ldwseg.models import PoolOptions
from ldwseg.models.convert import LDWPoolMix, LDWStridedConv, convert, converted_layers

SIZES = [(64, 64), (67, 81)]


def _pool_model(pool: nn.Module, channels: int = 3) -> nn.Sequential:
    """``pool`` after a 1x1 conv, so :func:`convert` can read the pool's channels."""
    return nn.Sequential(nn.Conv2d(channels, channels, 1), pool)


# --- sizes ---------------------------------------------------------------------------------------


def _pool_configs() -> list[tuple[type[nn.Module], int, int, bool]]:
    return [
        (kind, k, p, ceil)
        for kind in (nn.MaxPool2d, nn.AvgPool2d)
        for k in range(1, 5)
        for p in range(k // 2 + 1)
        for ceil in (False, True)
    ]


@pytest.mark.parametrize(("kind", "kernel", "padding", "ceil_mode"), _pool_configs())
def test_output_size_is_the_pools_for_every_input_size(kind, kernel, padding, ceil_mode):
    pool = kind(kernel, stride=2, padding=padding, ceil_mode=ceil_mode)
    try:
        converted = convert(_pool_model(pool, 2), avgpool=True)
    except ConfigError as error:  # the only refusal for stride 2: more outputs than ceil(H/2)
        assert "more rows or columns than LDW pooling's ceil(H/2)" in str(error)
        assert (kernel, padding, ceil_mode) not in {(2, 0, False), (3, 1, False), (2, 0, True), (3, 0, True)}
        return
    checked = 0
    for h in range(1, 14):
        x = torch.randn(1, 2, h, h + 3)
        try:
            expected = pool(x).shape
        except RuntimeError:  # too small for the original layer
            continue
        assert converted(x).shape == expected, (h, h + 3)
        checked += 1
    assert checked >= 10


def test_common_pools_are_supported():
    for pool in [
        nn.MaxPool2d(2),
        nn.MaxPool2d(3, 2, 1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.AvgPool2d(2, ceil_mode=True),
    ]:
        assert len(converted_layers(convert(_pool_model(pool), avgpool=True))) == 1


# --- initialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "ceil_mode"),
    [
        (nn.MaxPool2d(2), False),
        (nn.AvgPool2d(2), False),
        (nn.MaxPool2d(3, 2, 1), True),
        (nn.AvgPool2d(2, ceil_mode=True), True),
    ],
)
@pytest.mark.parametrize("size", SIZES)
def test_pools_start_as_the_2x2_average(pool, ceil_mode, size):
    block = convert(nn.Sequential(pool), avgpool=True, example_input=torch.randn(1, 3, 8, 8))[0]
    x = torch.randn(2, 3, *size)
    assert_close(block(x), F.avg_pool2d(x, 2, ceil_mode=ceil_mode))


def test_attention_does_not_change_the_start():
    block = convert(_pool_model(nn.MaxPool2d(2)), pool=PoolOptions(attention=True))[1]
    x = torch.randn(2, 3, 67, 81)
    assert_close(block(x), F.avg_pool2d(x, 2))


@pytest.mark.parametrize("wavelet", ["db2", "sym4"])
def test_longer_wavelets_start_as_a_low_pass_of_unit_gain(wavelet):
    block = convert(_pool_model(nn.MaxPool2d(2)), pool=PoolOptions(wavelet=wavelet, attention=False))[1]
    x = torch.full((1, 3, 20, 20), 3.0) + torch.arange(3.0)[:, None, None]
    assert_close(block(x), x[..., ::2, ::2])
    taps = block.mix.weight.view(3, 4, 3)
    assert_close(taps[:, 0], torch.eye(3) / 2)
    assert_close(taps[:, 1:], torch.zeros(3, 3, 3))


CONVS = {
    "1x1": lambda: nn.Conv2d(4, 6, 1, stride=2, bias=False),
    "1x1 grouped, bias": lambda: nn.Conv2d(4, 6, 1, stride=2, groups=2),
    "3x3": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1),
    "5x5 depthwise": lambda: nn.Conv2d(4, 4, 5, stride=2, padding=2, groups=4, bias=False),
    "3x3 dilated, unpadded": lambda: nn.Conv2d(4, 6, 3, stride=2, dilation=2),
    "4x4 reflect": lambda: nn.Conv2d(4, 6, 4, stride=2, padding=1, padding_mode="reflect"),
    "1x1 padded": lambda: nn.Conv2d(4, 6, 1, stride=2, padding=1),
}


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("name", CONVS)
def test_strided_convs_start_exactly_as_themselves_with_haar(name, attention):
    conv = CONVS[name]()
    block = convert(conv, strided_conv="all", pool=PoolOptions(attention=attention))
    pointwise = name.startswith("1x1") and "padded" not in name
    assert isinstance(block, LDWPoolMix if pointwise else LDWStridedConv)
    for size in [*SIZES, (7, 9)]:
        x = torch.randn(2, 4, *size)
        assert_close(block(x), conv(x), atol=1e-5, rtol=1e-5)


def test_blocks_follow_the_models_dtype():
    model = convert(_pool_model(nn.MaxPool2d(2)).double(), strided_conv="all")
    assert model[1].mix.weight.dtype == torch.float64
    assert model(torch.randn(1, 3, 9, 9, dtype=torch.float64)).dtype == torch.float64


def test_block_gradcheck_in_float64():
    block = LDWPoolMix(4, 6, groups=2, bias=True, size_offset=(0, -1)).double()
    x = torch.randn(1, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    low, high = (p.detach().clone().requires_grad_() for p in block.pool.filters())

    def run(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
        return torch.func.functional_call(block, {"pool.low": low, "pool.high": high}, (x,))

    assert torch.autograd.gradcheck(run, (x, low, high))


# --- the conversion itself -----------------------------------------------------------------------


def test_inplace_false_leaves_the_model_alone_and_inplace_true_converts_it():
    model = _pool_model(nn.MaxPool2d(2))
    converted = convert(model)
    assert isinstance(model[1], nn.MaxPool2d) and isinstance(converted[1], LDWPoolMix)
    assert convert(model, inplace=True) is model and isinstance(model[1], LDWPoolMix)


def test_replaced_layers_are_logged_and_listed(caplog):
    with caplog.at_level(logging.INFO, logger="ldwseg.models.convert.replace"):
        model = convert(torchvision.models.resnet18(weights=None), strided_conv="1x1")
    logged = caplog.text
    for path in ["maxpool", "layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]:
        assert f"replaced '{path}'" in logged
    assert "LDW blocks replace 4 of 4 candidate layers" in logged
    layers = converted_layers(model)
    assert list(layers) == ["maxpool", "layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]
    assert layers["maxpool"] == "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"


class _Reused(nn.Module):
    """One max pool module used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.pool(self.conv(x)))


class _PoolFirst(nn.Module):
    """Registers its pool before the conv that feeds it."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(x))


def test_example_input_records_the_channels_that_structure_gets_wrong():
    x = torch.randn(1, 3, 16, 16)
    guessed = convert(_PoolFirst())  # the next leaf is the conv: its in_channels 3, but the pool sees 8
    with pytest.raises(
        ValueError,
        match=r"built for 3 channels, got input of shape \(1, 8, 16, 16\); convert the model with example_input",
    ):
        guessed(x)
    model = convert(_PoolFirst(), example_input=x)
    assert model.pool.in_channels == 8 and model(x).shape == (1, 8, 8, 8)
    assert model.training, "the dry run must restore the training mode"


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (
            _pool_model(nn.MaxPool2d(3)),
            {},
            r"cannot convert '1' \(MaxPool2d\): stride \(3, 3\): LDW pooling halves the size",
        ),
        (_pool_model(nn.MaxPool2d(2, 1)), {}, r"'1' \(MaxPool2d\): stride \(1, 1\)"),
        (_pool_model(nn.MaxPool2d(2, 2, dilation=2)), {}, r"'1' \(MaxPool2d\): dilation \(2, 2\): only dilation 1"),
        (_pool_model(nn.MaxPool2d(2, return_indices=True)), {}, r"'1' \(MaxPool2d\): return_indices=True"),
        (
            _pool_model(nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
            {},
            r"kernel \(3, 3\), padding \(1, 1\), ceil_mode=True give more rows or columns than LDW pooling's ceil\(H/2\)",
        ),
        (_pool_model(nn.AvgPool2d(2, 4)), {"avgpool": True}, r"'1' \(AvgPool2d\): stride \(4, 4\)"),
        (_pool_model(nn.Conv2d(3, 3, 3, stride=(2, 1))), {"strided_conv": "all"}, r"'1' \(Conv2d\): stride \(2, 1\)"),
        (
            nn.Sequential(nn.MaxPool2d(2)),
            {},
            r"'0' \(MaxPool2d\): its channel count cannot be read .* pass example_input",
        ),
        (
            _Reused(),
            {"example_input": torch.randn(1, 3, 8, 8)},
            r"'pool' \(MaxPool2d\): it runs 2 times in one forward pass",
        ),
    ],
)
def test_unsupported_layers_raise_one_line_naming_the_path(model, options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        convert(model, inplace=True, **options)
    text = str(caught.value)
    assert "\n" not in text and text.endswith("pass skip_unsupported=True to leave such layers as they are")
    assert not converted_layers(model), "nothing may change when the conversion is refused"


def test_all_refusals_are_in_one_message():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.MaxPool2d(3), nn.MaxPool2d(2), nn.MaxPool2d(2, return_indices=True))
    with pytest.raises(ConfigError, match=r"'1' \(MaxPool2d\): stride \(3, 3\).*; '3' \(MaxPool2d\): return_indices"):
        convert(model)


def test_skip_unsupported_leaves_the_layer_and_warns(caplog):
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.MaxPool2d(3), nn.MaxPool2d(2))
    with caplog.at_level(logging.WARNING, logger="ldwseg.models.convert.replace"):
        converted = convert(model, skip_unsupported=True)
    assert isinstance(converted[1], nn.MaxPool2d) and isinstance(converted[2], LDWPoolMix)
    assert "left '1' (MaxPool2d): stride (3, 3)" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strided_conv": "yes"}, "strided_conv='yes' is not valid; choose one of none, 1x1, all"),
        (
            {"pool": PoolOptions(wavelet="bior2.2")},
            "pool.wavelet='bior2.2' cannot be used: wavelet 'bior2.2' is biorthogonal",
        ),
        ({"pool": PoolOptions(wavelet="db2", kernel_size=6)}, "kernel_size=6 does not match the 4-tap filters"),
        ({"pool": PoolOptions(constraint="tight")}, "pool.constraint='tight' is not valid"),
    ],
)
def test_bad_options_raise_config_errors(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        convert(_pool_model(nn.MaxPool2d(2)), **options)


# --- whole models --------------------------------------------------------------------------------


def _timm_resnet10t() -> nn.Module:
    timm = pytest.importorskip("timm")
    return timm.create_model("resnet10t", pretrained=False, num_classes=10)


def _smp_unet() -> nn.Module:
    smp = pytest.importorskip("segmentation_models_pytorch")
    return smp.Unet("resnet18", encoder_weights=None, classes=2)


def _outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    return [model(x)]


def _unet_outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The Unet where it accepts ``x`` (sides divisible by 32), else its encoder's features."""
    if x.shape[-2] % 32 or x.shape[-1] % 32:
        return list(model.encoder(x))
    return [model(x)]


@dataclass(frozen=True)
class Case:
    build: Callable[[], nn.Module]
    options: dict
    replaced: dict[str, int]
    outputs: Callable[[nn.Module, Tensor], list[Tensor]] = _outputs
    sizes: list[tuple[int, int]] = field(default_factory=lambda: SIZES)


CASES = {
    "resnet18": Case(lambda: torchvision.models.resnet18(weights=None), {"strided_conv": "1x1"}, {"LDWPoolMix": 4}),
    "resnet18-all": Case(
        lambda: torchvision.models.resnet18(weights=None),
        {"strided_conv": "all", "pool": PoolOptions(attention=True)},
        {"LDWPoolMix": 4, "LDWStridedConv": 4},
    ),
    "vgg11_bn": Case(lambda: torchvision.models.vgg11_bn(weights=None), {}, {"LDWPoolMix": 5}),
    "mobilenet_v3_small": Case(
        lambda: torchvision.models.mobilenet_v3_small(weights=None), {"strided_conv": "all"}, {"LDWStridedConv": 5}
    ),
    "timm-resnet10t": Case(
        _timm_resnet10t, {"avgpool": True, "pool": PoolOptions(wavelet="db2", attention=False)}, {"LDWPoolMix": 4}
    ),
    "smp-unet": Case(
        _smp_unet, {"strided_conv": "1x1"}, {"LDWPoolMix": 4}, _unet_outputs, [(64, 64), (96, 160), (67, 81)]
    ),
}


@functools.cache
def _original(name: str) -> nn.Module:
    torch.manual_seed(0)
    return CASES[name].build().eval()


def _converted(name: str) -> nn.Module:
    return convert(_original(name), **CASES[name].options)


def _pools(model: nn.Module) -> list[LDWPool2d]:
    return [m for m in model.modules() if isinstance(m, LDWPool2d)]


@pytest.mark.parametrize("name", CASES)
def test_models_have_their_downsampling_layers_replaced(name):
    model = _converted(name)
    kinds = Counter(type(model.get_submodule(path)).__name__ for path in converted_layers(model))
    assert dict(kinds) == CASES[name].replaced
    left = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    left += [m for m in model.modules() if isinstance(m, nn.AvgPool2d) and CASES[name].options.get("avgpool")]
    assert not left
    if CASES[name].options.get("strided_conv") == "all":
        assert not [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert not converted_layers(_original(name)), "inplace=False must leave the original model alone"


@pytest.mark.parametrize("name", CASES)
def test_models_keep_their_output_shapes_at_even_and_odd_sizes(name):
    case, model = CASES[name], _converted(name).eval()
    with torch.no_grad():
        for size in case.sizes:
            x = torch.randn(2, 3, *size)
            expected = [y.shape for y in case.outputs(_original(name), x)]
            assert [y.shape for y in case.outputs(model, x)] == expected, size


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "timm-resnet10t"])
def test_strided_conv_conversion_starts_exactly_as_the_model(name):
    model = convert(_original(name), maxpool=False, strided_conv="all").eval()
    assert converted_layers(model)
    for size in SIZES:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            assert_close(model(x), _original(name)(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_ldw_filter(name):
    model = _converted(name).train()
    x = torch.randn(2, 3, 64, 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        sum(y.square().sum() for y in CASES[name].outputs(model, x)).backward()  # the task alone: no rounding noise
        optimizer.step()

    step()
    pools = _pools(model)
    assert pools and all(pool.low.grad.abs().max() > 0 for pool in pools)
    # a pool block starts with zero weight on LH, HL, HH, so W^H gets its first gradient one step later
    step()
    assert all(pool.high.grad.abs().max() > 0 for pool in pools)


@pytest.mark.parametrize("name", CASES)
def test_wavelet_loss_covers_every_new_pool(name):
    model = _converted(name)
    pools = _pools(model)
    assert len(pools) == sum(CASES[name].replaced.values())
    assert wavelet_loss(model).item() == pytest.approx(0.0, abs=1e-10), "orthogonal wavelets start at loss 0"
    with torch.no_grad():
        for pool in pools:
            pool.low[0] += 0.05
    each = pools[0].wavelet_loss()
    assert each > 0
    assert_close(wavelet_loss(model), len(pools) * each)


@pytest.mark.parametrize("name", CASES)
def test_safetensors_round_trip_gives_identical_outputs(name, tmp_path: Path):
    from safetensors.torch import load_file, load_model, save_model

    model = _converted(name).eval()
    with torch.no_grad():  # move the LDW parameters away from the values a fresh conversion starts with
        for block in model.modules():
            if isinstance(block, LDWPoolMix):
                for p in block.parameters():
                    p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "model.safetensors"
    save_model(model, str(path))
    assert set(load_file(str(path))) == set(model.state_dict()), "no tensor may be dropped as shared"
    fresh = _converted(name).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(fresh(x), model(x))
        missing, unexpected = load_model(fresh, str(path))
        assert not missing and not unexpected
        for a, b in zip(CASES[name].outputs(fresh, x), CASES[name].outputs(model, x)):
            assert torch.equal(a, b)


def _photo_batch(size: int) -> Tensor:
    crops = [data.astronaut()[100 : 100 + size, 180 : 180 + size], data.coffee()[150 : 150 + size, 250 : 250 + size]]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)


def test_sgd_steps_on_photos_reduce_the_loss():
    model = convert(torchvision.models.resnet18(weights=None, num_classes=2), strided_conv="1x1").train()
    # 48x48: at 32x32 layer4 is 1x1, BatchNorm over two values gives huge gradients, and this
    # plain SGD throws the filters (which, unlike BN-ed conv weights, are not scale-free) off
    x, target = _photo_batch(48), torch.tensor([0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x), target) + wavelet_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(not torch.equal(pool.low, pool.initial_low) for pool in _pools(model)), "the filters must move"


# --- ONNX ----------------------------------------------------------------------------------------


def _every_block() -> nn.Module:
    """One of each block kind: a stem pool, a depthwise and a grouped strided conv, an avg pool."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.Conv2d(8, 12, 1, stride=2, groups=4),
        nn.AvgPool2d(2),
    )
    return convert(net, strided_conv="all", avgpool=True, pool=PoolOptions(attention=True, wavelet="db2"))


def _onnx_session(model: nn.Module, example: Tensor, path: Path, *, dynamo: bool):
    """Export with batch, height and width dynamic and open the file in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    kwargs: dict = {"input_names": ["x"], "output_names": ["y"], "dynamo": dynamo}
    if dynamo:
        pytest.importorskip("onnxscript")
        any_size = getattr(torch.export.Dim, "DYNAMIC", None)
        if any_size is None:
            pytest.skip("torch.export.Dim.DYNAMIC needs a newer torch")
        kwargs.update(dynamic_shapes=({0: any_size, 2: any_size, 3: any_size},), verbose=False)
    else:
        kwargs["dynamic_axes"] = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "out_h", 3: "out_w"}}
    model.eval()
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(model, (example,), str(path), **kwargs)
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_onnx_matches(session, model: nn.Module, shapes: list[tuple[int, ...]]) -> None:
    for shape in shapes:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x)
        assert_close(torch.from_numpy(session.run(None, {"x": x.numpy()})[0]), expected, atol=1e-4, rtol=1e-4)


def test_onnx_torchscript_export_of_every_block_kind(tmp_path: Path):
    model = _every_block()
    session = _onnx_session(model, torch.randn(2, 3, 32, 32), tmp_path / "blocks.onnx", dynamo=False)
    _assert_onnx_matches(session, model, [(2, 3, 32, 32), (3, 3, 67, 81), (1, 3, 13, 21)])


def test_onnx_torchscript_export_of_a_converted_resnet18(tmp_path: Path):
    model = convert(torchvision.models.resnet18(weights=None, num_classes=10), strided_conv="all")
    session = _onnx_session(model, torch.randn(1, 3, 64, 64), tmp_path / "resnet18.onnx", dynamo=False)
    _assert_onnx_matches(session, model, [(1, 3, 64, 64), (2, 3, 67, 81)])


def test_onnx_dynamo_export_of_pool_and_grouped_conv_blocks(tmp_path: Path):
    # two blocks only: the dynamo exporter's time grows quickly with the number of chained LDW pools
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 12, 1, stride=2, groups=4))
    model = convert(net, strided_conv="1x1")
    session = _onnx_session(model, torch.randn(2, 3, 32, 32), tmp_path / "dynamo.onnx", dynamo=True)
    _assert_onnx_matches(session, model, [(2, 3, 32, 32), (3, 3, 67, 81), (1, 3, 13, 21)])
