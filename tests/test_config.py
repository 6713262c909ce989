"""Typed configs: YAML files, overrides, validation messages."""

from pathlib import Path

import pytest

from ldwseg.config import Config, apply_overrides
from ldwseg.errors import ConfigError
from ldwseg.tasks import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_bundled_configs_load():
    assert {p.name for p in CONFIGS} >= {"voc12_unet_maxpool.yaml", "voc12_unet_ldw.yaml", "synthetic.yaml"}
    for path in CONFIGS:
        load_config(path)


def test_paper_recipe_in_the_voc_configs():
    for name in ("voc12_unet_maxpool.yaml", "voc12_unet_ldw.yaml", "voc12_unet_ldw_paper.yaml"):
        cfg = load_config(Path(CONFIGS[0].parent / name))
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.step_size, cfg.optim.gamma) == (1e-4, 1e-4, 100, 0.1)
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.model.base_width) == (400, 64, 64)
    paper = load_config(CONFIGS[0].parent / "voc12_unet_ldw_paper.yaml").model
    assert (paper.down, paper.up, paper.wavelet, paper.constraint, paper.attention) == (
        "ldw",
        "ldw",
        "haar",
        "paper",
        True,
    )


def test_ldw_configs_are_the_default_design_and_differ_from_their_baseline_only_in_the_model():
    """The LDW configs carry the library's default design; each max-pool config is its twin."""
    default = Config().model
    for ldw, baseline in (
        ("voc12_unet_ldw.yaml", "voc12_unet_maxpool.yaml"),
        ("camvid_unet_ldw.yaml", "camvid_unet_maxpool.yaml"),
    ):
        a, b = (load_config(CONFIGS[0].parent / name) for name in (ldw, baseline))
        fields = ("down", "up", "wavelet", "constraint", "attention", "efficient", "norm")
        assert [getattr(a.model, f) for f in fields] == [getattr(default, f) for f in fields]
        assert (b.model.down, b.model.up) == ("maxpool", "deconv")
        assert (a.data, a.optim, a.train.epochs, a.model.base_width) == (
            b.data,
            b.optim,
            b.train.epochs,
            b.model.base_width,
        )


def test_recon_long_is_the_recon_default_model_and_data_trained_longer():
    default = load_config(None, ["train.task=recon"])
    long = load_config(CONFIGS[0].parent / "recon_long.yaml")
    assert (long.train.task, long.data, long.model, long.optim) == ("recon", default.data, default.model, default.optim)
    assert (default.model.down, default.model.up, default.optim.schedule) == ("ldw-ll", "ldw-detail", "cosine")
    assert (default.model.norm, Config().model.norm) == ("affine", "batch")
    assert long.train.batch_size == default.train.batch_size
    assert long.train.epochs > 5 * default.train.epochs


def test_overrides_are_typed():
    cfg = load_config(None, ["model.base_width=32", "optim.lr=1e-3", "train.amp=bf16", "model.kernel_size=null"])
    assert cfg.model.base_width == 32 and cfg.optim.lr == pytest.approx(1e-3) and cfg.train.amp == "bf16"
    assert cfg.model.kernel_size is None
    assert apply_overrides(Config(), {"train.epochs": 3}).train.epochs == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.widht=3", "unknown key model.widht; valid keys are model.down, model.up"),
        ("modle.depth=3", "unknown section 'modle'; valid sections are model, data, optim, train"),
        ("train.epochs=ten", "train.epochs must be of type int, got 'ten'"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("model.down=avg", "model.down='avg' is not valid; choose one of maxpool, ldw, avgpool"),
        ("model.up=bilinear", "model.up='bilinear' is not valid; choose one of deconv, ldw, ldw-detail, shuffle"),
        ("model.down=spd", "model.up='ldw' reverses the LDW pool of the down block of its level, but model.down='spd'"),
        ("model.learn_filters=maybe", "model.learn_filters must be of type bool"),
        ("model.constraint=strict", "model.constraint='strict' is not valid; choose one of paper, orthogonal, lattice"),
        ("model.depth=0", "model.depth must be >= 1, got 0"),
        ("model.kernel_size=1", "model.kernel_size must be >= 2 (or null for the wavelet's length), got 1"),
        ("model.depth=40", "model.base_width=16 with model.depth=40 makes a UNet of about"),
        ("model.wavelet=bior2.2", "model.wavelet='bior2.2' cannot be used: wavelet 'bior2.2' is biorthogonal"),
        ("train.epochs", "must look like section.field=value"),
        ("epochs=3", "must name section.field"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_ldw_up_needs_ldw_down():
    with pytest.raises(ConfigError, match="reverses the LDW pool of the down block of its level"):
        load_config(None, ["model.down=maxpool", "model.up=ldw"])


def test_model_checks_are_the_unet_checks_with_model_names():
    with pytest.raises(ConfigError, match="model.efficient needs model.base_width divisible by 4, got 6"):
        load_config(None, ["model.down=ldw", "model.efficient=true", "model.base_width=6"])
    with pytest.raises(ConfigError, match="model.down='ldw-efficient' needs input channels divisible by 4, but the"):
        load_config(None, ["model.base_width=6"])  # the default design pools base_width / 4 channels
    with pytest.raises(ConfigError, match="model.down='ldw-efficient' reduces the channels before its split already"):
        load_config(None, ["model.efficient=true"])
    with pytest.raises(ConfigError, match="with model.down=maxpool choose model.up from deconv, shuffle"):
        load_config(None, ["model.down=maxpool", "model.up=ldw-detail"])
    with pytest.raises(ConfigError, match="model.down='ldw-grouped' needs output channels divisible by 4, but the"):
        load_config(None, ["model.down=ldw-grouped", "model.base_width=3"])
    with pytest.raises(ConfigError, match="model.efficient=true reduces the channels before the 2x2 split of"):
        load_config(None, ["model.down=maxpool", "model.up=deconv", "model.efficient=true"])
    load_config(None, ["model.down=maxpool", "model.up=deconv", "model.wavelet=nosuch"])  # no LDW pool to fill


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  batch_size: '8x'\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: train.batch_size must be of type int"):
        load_config(wrong)


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(None, ["model.up=ldw-detail", "data.root=/x/y", "train.wavelet_weight=0.5"])
    cfg.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_learn_filters_reaches_every_pool_and_defaults_to_true(tmp_path):
    from ldwseg.models import build_unet
    from ldwseg.pooling import LDWPool2d

    cfg = load_config(None, ["model.learn_filters=false", "model.base_width=4", "model.down=ldw-ll"])
    pools = [m for m in build_unet(cfg.model, 3, 2).modules() if isinstance(m, LDWPool2d)]
    assert len(pools) == 4 and not any(p.requires_grad for m in pools for p in m.parameters())
    old = tmp_path / "old.yaml"  # a config written before the field existed
    old.write_text("model:\n  down: ldw\n  base_width: 4\n")
    assert load_config(old).model.learn_filters is True
