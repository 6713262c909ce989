"""End to end: ldwseg train / evaluate / predict on tiny data, DDP with torchrun, resume."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from trees import make_voc
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.io.weights import read_metadata

runner = CliRunner()
TINY = [
    "--set", "model.base_width=4", "--set", "data.crop_size=48", "--set", "train.batch_size=4",
    "--set", "train.max_steps_per_epoch=3", "--device", "cpu",
]  # fmt: skip


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs


def train(out: Path, *args: str) -> str:
    result = runner.invoke(app, ["train", "--out", str(out), *TINY, *args])
    assert result.exit_code == 0, result.output
    return result.output


def csv_rows(out: Path) -> list[dict]:
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_writes_checkpoints_logs_and_config(tmp_path):
    out = tmp_path / "run"
    output = train(out, "--epochs", "2")
    assert "best val mIoU" in output
    for name in ("best.safetensors", "last.safetensors", "last.state.pt", "config.yaml", "metrics.csv"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    rows = csv_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2"]  # numbered as the console prints them
    meta = read_metadata(out / "best.safetensors")
    assert meta["task"] == "seg" and meta["config"]["model"]["base_width"] == 4
    assert meta["dataset"]["num_classes"] == 6 and len(meta["dataset"]["palette"]) >= 6


def test_evaluate_reproduces_the_training_miou(tmp_path):
    out = tmp_path / "run"
    train(out, "--epochs", "2")
    best = max(float(r["val_miou"]) for r in csv_rows(out))
    result = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert set(report) >= {"miou", "per_class_iou", "pixel_acc"}
    assert report["miou"] == pytest.approx(best, abs=1e-9)
    assert len(report["per_class_iou"]) == 6
    table = runner.invoke(app, ["evaluate", str(out / "best.safetensors")])
    assert table.exit_code == 0 and "curve" in table.output and "mIoU" in table.output


def test_resume_continues_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    train(out, "--epochs", "1")
    train(out, "--epochs", "2", "--resume")
    assert [r["epoch"] for r in csv_rows(out)] == ["1", "2"]
    assert read_metadata(out / "last.safetensors")["epoch"] == 1


def test_maxpool_baseline_trains_too(tmp_path):
    output = train(tmp_path / "base", "--epochs", "1", "--down", "maxpool", "--up", "deconv")
    assert "best val mIoU" in output


def test_predict_writes_palette_masks_of_the_input_size(tmp_path, data_dir):
    out = tmp_path / "run"
    train(out, "--epochs", "1")
    image = next((data_dir / "synthetic" / "VOC2012" / "JPEGImages").glob("val_*.jpg"))
    odd = tmp_path / "odd.png"
    Image.open(image).crop((0, 0, 101, 77)).save(odd)
    result = runner.invoke(
        app, ["predict", str(out / "best.safetensors"), str(image), str(odd), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    mask = Image.open(tmp_path / "p" / "odd_mask.png")
    assert mask.mode == "P" and mask.size == (101, 77)
    assert np.asarray(mask).max() < 6
    width, height = Image.open(tmp_path / "p" / "odd_overlay.png").size
    assert width == 101 and height > 77  # the image, then the legend strip below it


def test_train_on_a_voc_tree_of_real_samples(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path)
    out = tmp_path / "voc"
    train(out, "--dataset", "voc12", "--data-root", str(devkit), "--epochs", "1", "--set", "train.batch_size=1")
    result = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    (row,) = csv_rows(out)
    assert len(report["per_class_iou"]) == 21 and report["pixel_acc"] == pytest.approx(float(row["val_pixel_acc"]))


def test_train_on_voc12_aug_masks(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path, aug=True)
    lists = devkit / "VOC2012" / "ImageSets" / "Segmentation"
    (lists / "train.txt").rename(lists / "train_aug.txt")
    out = tmp_path / "aug"
    train(out, "--dataset", "voc12-aug", "--data-root", str(devkit), "--epochs", "1", "--set", "train.batch_size=1")
    assert read_metadata(out / "best.safetensors")["config"]["data"]["dataset"] == "voc12-aug"


def test_camvid_loader_trains(shared_data, tmp_path):
    from trees import make_camvid

    root = make_camvid(shared_data, tmp_path)
    out = tmp_path / "camvid"
    train(out, "--dataset", "camvid", "--data-root", str(root), "--epochs", "1", "--set", "train.batch_size=2")
    assert read_metadata(out / "best.safetensors")["dataset"]["num_classes"] == 11


def test_torchrun_two_processes_on_cpu(tmp_path, data_dir):
    out = tmp_path / "ddp"
    env = {**os.environ, "LDWSEG_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "ldwseg", "train", "--out", str(out), "--epochs", "1", *TINY,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "best.safetensors").is_file() and (out / "last.safetensors").is_file()
    assert len(csv_rows(out)) == 1  # one writer
    assert proc.stdout.count("best val mIoU") == 1  # rank 0 reports for the group


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.safetensors")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "nope.safetensors" in result.output


def test_unknown_dataset_lists_the_valid_ones(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--dataset", "imagenet", *TINY])
    assert result.exit_code != 0
    assert "voc12" in result.output and "synthetic" in result.output and "Traceback" not in result.output


def test_bf16_autocast_and_channels_last_train(tmp_path):
    """The bf16 channels-last run trains like the float32 one (the same seed, losses within bf16's rounding)
    and evaluate, which runs the run's bf16, reproduces its logged score."""
    train(tmp_path / "amp", "--epochs", "1", "--amp", "bf16", "--channels-last")
    train(tmp_path / "fp32", "--epochs", "1")
    (amp,), (fp32,) = csv_rows(tmp_path / "amp"), csv_rows(tmp_path / "fp32")
    assert float(amp["task_loss"]) == pytest.approx(float(fp32["task_loss"]), rel=0.05)
    assert float(amp["task_loss"]) != float(fp32["task_loss"])  # bf16 did run
    result = runner.invoke(app, ["evaluate", str(tmp_path / "amp" / "best.safetensors"), "--json"])
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["amp"] == "bf16" and report["miou"] == pytest.approx(float(amp["val_miou"]), abs=1e-12)


def test_fp16_on_cpu_is_refused_clearly(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), *TINY, "--amp", "fp16"])
    assert result.exit_code != 0 and "needs a CUDA device" in result.output


def test_predict_reads_gray_16bit_images_and_rejects_unreadable_ones(tmp_path):
    out = tmp_path / "run"
    train(out, "--epochs", "1")
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).save(gray16)
    result = runner.invoke(app, ["predict", str(out / "best.safetensors"), str(gray16), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "p" / "gray16_mask.png").size == (30, 40)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    result = runner.invoke(app, ["predict", str(out / "best.safetensors"), str(text), "--out", str(tmp_path / "q")])
    assert result.exit_code != 0 and "text.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "q").exists()
