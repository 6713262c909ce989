"""``ldwseg train --arch smp-unet --encoder resnet18 --down ldw``, then evaluate, predict, export and filters from
the checkpoint alone; the options' one-line errors, and an offline download of ImageNet weights."""

import csv
import json
from pathlib import Path

import pytest
import segmentation_models_pytorch.encoders as smp_encoders
from huggingface_hub.errors import LocalEntryNotFoundError
from PIL import Image
from run_checks import Run, cli
from typer.testing import CliRunner

from ldwseg.cli.compare_cmd import _train_params
from ldwseg.cli.train_cmd import config_of, default_out
from ldwseg.datasets import generate_synthetic
from ldwseg.io.weights import read_metadata

runner = CliRunner()
SMP = ["--arch", "smp-unet", "--encoder", "resnet18", "--down", "ldw"]
TINY = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "4", "--device", "cpu",
        "--set", "train.max_steps_per_epoch=2", "--set", "data.crop_size=64"]  # fmt: skip
CONVERTED = 8  # a ResNet-18's stem conv, max pool, and the first conv and shortcut of stages 2-4


def error_line(run: Run) -> str:
    """The one ``error:`` line of a failed run."""
    assert run.code == 2, run
    lines = [line for line in run.err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.err
    return lines[0]


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    """The synthetic set, small: 8 training and 2 validation images of 64x64."""
    return generate_synthetic(tmp_path_factory.mktemp("data") / "synthetic", num_train=8, num_val=2, size=64)


@pytest.mark.slow
def test_smp_unet_with_ldw_trains_and_every_command_reads_its_checkpoint(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    trained = cli("train", *SMP, *TINY, "--data-root", tiny_synthetic, "--out", out)
    assert trained.code == 0, trained.err
    best = out / "best.safetensors"
    model = read_metadata(best)["config"]["model"]
    assert (model["arch"], model["encoder"], model["down"]) == ("smp-unet", "resnet18", "ldw")

    evaluated = cli("evaluate", best, "--json")
    assert evaluated.code == 0, evaluated.err
    with (out / "metrics.csv").open() as f:
        val_miou = float(list(csv.DictReader(f))[-1]["val_miou"])
    assert json.loads(evaluated.out.strip().splitlines()[-1])["miou"] == pytest.approx(val_miou, abs=1e-9)

    image = next((tiny_synthetic / "VOC2012" / "JPEGImages").glob("val_*.jpg"))
    odd = tmp_path / "odd.png"
    Image.open(image).crop((0, 0, 45, 37)).save(odd)
    predicted = cli("predict", best, odd, "--out", tmp_path / "pred", "--no-overlay")
    assert predicted.code == 0, predicted.err
    assert Image.open(tmp_path / "pred" / "odd_mask.png").size == (45, 37)

    exported = cli("export", best, tmp_path / "model.onnx", "--check-size", "45", "37", "--json")
    assert exported.code == 0, exported.err
    report = json.loads(exported.out.strip().splitlines()[-1])
    assert report["max_abs_error"] <= report["limit"] and (tmp_path / "model.onnx").is_file()

    filters = cli("filters", best, "--json")
    assert filters.code == 0, filters.err
    pools = json.loads(filters.out.strip().splitlines()[-1])["pools"]
    assert len(pools) == CONVERTED and all(p["name"].startswith("net.encoder.") for p in pools)


def test_offline_imagenet_weights_stop_training_in_one_line(tiny_synthetic, tmp_path, monkeypatch):
    calls = []

    def fail(repo_id, filename, **kwargs):
        calls.append(repo_id)
        raise LocalEntryNotFoundError("cannot reach huggingface.co and the file is not in the local cache")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", fail)
    run = cli("train", *SMP, *TINY, "--data-root", tiny_synthetic, "--out", tmp_path / "run",
              "--set", "model.encoder_weights=imagenet")  # fmt: skip
    line = error_line(run)
    assert calls, "the download was not attempted"
    assert "cannot download the imagenet weights of encoder resnet18" in line
    assert "use --set model.encoder_weights=null to train without them" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["--arch", "smp-linknet"], "model.arch='smp-linknet' is not valid; choose one of unet, smp-unet"),
        (["--arch", "smp-fpn", "--encoder", "resnet19"], "get_encoder_names()"),
        (["--arch", "smp-unet", "--up", "deconv"], "--up chooses the decoder blocks of --arch unet; smp-unet "
         "upsamples by its own decoder (nearest-neighbour"),
        (["--arch", "smp-unet", "--down", "spd"], "with model.arch=smp-unet choose model.down=ldw"),
        (["--arch", "smp-unet", "--task", "recon"], "model.skip=false (the autoencoder of --task recon)"),
        (["--encoder", "resnet34"], "--encoder chooses the encoder of an smp --arch; --arch unet has its own"),
    ],
)  # fmt: skip
def test_option_errors_are_one_line(args, words, tmp_path):
    assert words in error_line(cli("train", *args, "--out", tmp_path / "run"))


def test_compare_and_the_default_folder_take_the_arch():
    cfg = config_of(_train_params(["--arch", "smp-fpn", "--encoder", "resnet34", "--down", "maxpool"]))
    assert (cfg.model.arch, cfg.model.encoder, cfg.model.down) == ("smp-fpn", "resnet34", "maxpool")
    assert default_out(cfg).name.startswith("synthetic-smp-fpn-resnet34")
    assert default_out(config_of(_train_params(["--arch", "smp-unet"]))).name.startswith("synthetic-smp-unet")
    assert "resnet18" not in default_out(config_of(_train_params([]))).name  # the UNet has no encoder
