"""``model.arch``: the UNet or an smp network, built by one function for training and checkpoints."""

import pytest
import segmentation_models_pytorch as smp
import segmentation_models_pytorch.encoders as smp_encoders
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from torch import nn

from ldwseg import LDWPool2d, converted_layers, wavelet_loss
from ldwseg.config import Config, apply_overrides
from ldwseg.engine.checkpoints import load_run_model, save_run_checkpoint
from ldwseg.errors import ConfigError
from ldwseg.models import build_unet
from ldwseg.models.build import ARCHS, build_network, input_multiple
from ldwseg.models.smp import SMP_ARCHS, EncoderWeightsError, SMPSegmenter
from ldwseg.tasks import load_config

RESNET18_LDW = [
    "net.encoder.conv1", "net.encoder.maxpool", "net.encoder.layer2.0.conv1", "net.encoder.layer2.0.downsample.0",
    "net.encoder.layer3.0.conv1", "net.encoder.layer3.0.downsample.0", "net.encoder.layer4.0.conv1",
    "net.encoder.layer4.0.downsample.0",
]  # fmt: skip


def spec(*overrides: str):
    return apply_overrides(Config(), list(overrides)).model


def seeded(model_spec, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return build_network(model_spec, 3, classes)


def test_the_archs_are_the_unet_then_the_smp_ones():
    assert ARCHS == ("unet", "smp-unet", "smp-unetplusplus", "smp-fpn", "smp-deeplabv3plus")
    assert all(hasattr(smp, name) for name in SMP_ARCHS.values())


def test_unet_arch_is_the_unet_as_before():
    model_spec = spec("model.base_width=4", "model.depth=2")
    torch.manual_seed(0)
    expected = build_unet(model_spec, 3, 4)
    got = seeded(model_spec)
    assert type(got) is type(expected)
    assert got.state_dict().keys() == expected.state_dict().keys()
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(got.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_smp_maxpool_is_smp_as_it_builds_it():
    """``--down maxpool`` changes nothing: the weights and logits of smp.Unet built directly with the same seed."""
    got = seeded(spec("model.arch=smp-unet", "model.down=maxpool"))
    torch.manual_seed(0)
    expected = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=4)
    assert isinstance(got, SMPSegmenter) and not converted_layers(got)
    assert got.state_dict().keys() == {f"net.{k}" for k in expected.state_dict()}
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(got.state_dict()[f"net.{key}"], value, rtol=0, atol=0, msg=key)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(got.eval()(x), expected.eval()(x))


def test_any_input_size_is_padded_to_the_output_stride_and_cropped_back():
    model = seeded(spec("model.arch=smp-fpn", "model.down=maxpool")).eval()
    assert model.pads
    x = torch.randn(1, 3, 50, 77)
    padded = torch.zeros(1, 3, 64, 96)
    padded[..., :50, :77] = x
    with torch.no_grad():
        got = model(x)
        expected = model.net(padded)[..., :50, :77]
    assert got.shape == (1, 4, 50, 77)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="divisible by 32"):  # what the padding is for
        model.net(x)


def test_ldw_encoder_starts_as_the_smp_model_with_an_average_pool():
    """With Haar, the strided-conv blocks are the convs exactly and the pool block is the 2x2 mean, with the
    energy attention's doubled gates at 1/2; the rest of the network is smp's own (same seed)."""
    converted = seeded(spec("model.arch=smp-unet", "model.down=ldw", "model.wavelet=haar", "model.attention=true"))
    reference = seeded(spec("model.arch=smp-unet", "model.down=maxpool"))
    reference.net.encoder.maxpool = nn.AvgPool2d(2)
    assert list(converted_layers(converted)) == RESNET18_LDW
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(converted.eval()(x), reference.eval()(x))


def test_wavelet_loss_covers_the_converted_pools():
    model = seeded(spec("model.arch=smp-fpn", "model.down=ldw", "model.constraint=paper"))
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    assert len(pools) == len(RESNET18_LDW)
    loss = wavelet_loss(model)
    torch.testing.assert_close(loss, sum(p.wavelet_loss() for p in pools))
    assert loss > 0  # the paper's Eqs. 9-12 are not 0 for orthonormal Haar
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for pool in pools for p in pool.parameters())


def test_the_orthogonal_haar_pools_meet_their_constraint():
    model = seeded(spec("model.arch=smp-unet", "model.down=ldw"))
    assert float(wavelet_loss(model).detach()) < 1e-10


@pytest.mark.parametrize(
    "overrides, multiple",
    [(["model.arch=smp-unet"], 32), (["model.arch=smp-deeplabv3plus"], 16), (["model.depth=3"], 8)],
)
def test_input_multiple(overrides, multiple):
    model = build_network(spec(*overrides, "model.base_width=4"), 3, 2)
    assert input_multiple(model) == multiple


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.arch=smp-linknet"], "model.arch='smp-linknet' is not valid; choose one of unet, smp-unet, "),
        (["model.arch=smp-unet", "model.encoder=resnet19"],
         r"model.encoder='resnet19' is not an smp encoder \(did you mean resnet18.*get_encoder_names\(\)"),
        (["model.arch=smp-unet", "model.encoder=tu-no_such_net"], "timm has no model 'no_such_net'"),
        (["model.arch=smp-unet", "model.encoder_weights=instagram"],
         "model.encoder_weights='instagram' is not available for model.encoder=resnet18; choose null .* imagenet"),
        (["model.arch=smp-fpn", "model.down=conv"], "model.down='conv' is a down block of model.arch=unet; .* "
         "model.down=ldw .* or model.down=maxpool"),
        (["model.arch=smp-unet", "model.skip=false"], "model.skip=false .* needs model.arch=unet"),
        (["model.arch=smp-unet", "model.efficient=true"], "set model.efficient=false"),
        (["model.arch=smp-unet", "model.norm=affine"], "model.norm='affine' replaces the UNet's BatchNorm; .* set "
         "model.norm=batch"),
        (["model.arch=smp-unet", "model.constraint=tight"], "model.constraint='tight' is not valid"),
        (["model.arch=smp-unet", "model.wavelet=db99"], "model.wavelet='db99' cannot be used"),
    ],
)  # fmt: skip
def test_config_errors_say_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        apply_overrides(Config(), overrides)
    assert "\n" not in str(caught.value)


def test_the_unet_fields_are_not_used_by_an_smp_arch():
    plain = seeded(spec("model.arch=smp-unet"))
    other = seeded(spec("model.arch=smp-unet", "model.up=deconv", "model.base_width=64", "model.depth=2"))
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0, msg=key)
    apply_overrides(Config(), ["model.arch=smp-unet", "model.down=maxpool", "model.up=ldw"])  # no UNet pairing rule


def test_recon_needs_the_unet():
    with pytest.raises(ConfigError, match="model.skip=false"):
        load_config(None, {"train.task": "recon", "model.arch": "smp-unet"})


def test_an_encoder_the_arch_refuses_is_one_line():
    with pytest.raises(
        ConfigError,
        match="model.arch=smp-deeplabv3plus cannot use model.encoder=vgg11: .VGG. models do not support dilated mode",
    ):
        build_network(spec("model.arch=smp-deeplabv3plus", "model.encoder=vgg11"), 3, 2)


@pytest.fixture
def offline(monkeypatch) -> list:
    """smp's download of encoder weights fails as it does without a network; the calls are recorded."""
    calls = []

    def fail(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        raise LocalEntryNotFoundError("cannot reach huggingface.co and the file is not in the local cache")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", fail)
    return calls


def test_offline_imagenet_weights_fail_in_one_line(offline):
    with pytest.raises(EncoderWeightsError, match=r"cannot download the imagenet weights of encoder resnet18 "
                       r"\(LocalEntryNotFoundError: .*--set model.encoder_weights=null") as caught:  # fmt: skip
        build_network(spec("model.arch=smp-unet", "model.encoder_weights=imagenet"), 3, 2)
    assert offline and "\n" not in str(caught.value)


def test_a_checkpoint_rebuilds_its_smp_network_without_downloading(offline, tmp_path):
    cfg = apply_overrides(Config(), ["model.arch=smp-unet", "model.encoder_weights=imagenet"])
    torch.manual_seed(0)
    model = build_network(cfg.model, 3, 3, pretrained=False)
    path = tmp_path / "best.safetensors"
    save_run_checkpoint(path, model, cfg, {"num_classes": 3}, epoch=0, metrics={})
    torch.manual_seed(1)  # the rebuilt network's own initial weights differ
    loaded, meta, stored = load_run_model(path, task="seg")
    assert not offline and stored.model.arch == "smp-unet" and meta["config"]["model"]["encoder_weights"] == "imagenet"
    assert list(converted_layers(loaded)) == RESNET18_LDW
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def test_smp_unet_takes_any_size_without_padding():
    """smp's Unet interpolates to each skip's size (smp >= 0.5), so it runs on the image itself."""
    model = seeded(spec("model.arch=smp-unet", "model.down=ldw")).eval()
    assert not model.pads
    x = torch.randn(1, 3, 50, 77)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(x), rtol=0, atol=0)


def test_a_padded_network_exports_to_onnx_exactly_at_other_sizes(tmp_path):
    """The padding amounts come from the traced shape: the file is checked at an odd size it was not traced at."""
    from ldwseg.inference.export import export_onnx

    cfg = apply_overrides(Config(), ["model.arch=smp-fpn", "model.down=ldw", "data.crop_size=64"])
    path = tmp_path / "best.safetensors"
    save_run_checkpoint(path, seeded(cfg.model, 3), cfg, {"num_classes": 3}, epoch=0, metrics={})
    report = export_onnx(path, tmp_path / "model.onnx", check_size=(45, 70))
    assert [c["shape"] for c in report["checks"]] == [[2, 3, 64, 64], [1, 3, 45, 70]]
    assert report["max_abs_error"] <= report["limit"]
