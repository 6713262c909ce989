"""Bad input never crashes with a traceback.

Every command answers a known problem with exactly one ``error: ...`` line on stderr that
names the problem, a non-zero exit status and no output file left behind; inputs that are
merely unusual (16-bit, palette, RGBA, gray images) work. The commands run through the
console script's ``main`` in-process, and a few through the installed ``ldwseg`` script.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image
from run_checks import Run, cli
from typer.testing import CliRunner

from ldwseg.cli import main
from ldwseg.engine.checkpoints import save_run_checkpoint
from ldwseg.engine.runlock import LOCK_NAME
from ldwseg.errors import DataError, Interrupted
from ldwseg.models import build_unet
from ldwseg.tasks import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
SMALL = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
         "--set", "train.batch_size=2", "--set", "train.max_steps_per_epoch=1"]  # fmt: skip
TINY = ["--epochs", "1", "--device", "cpu", *SMALL]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def error_line(run: Run, *words: str, code: int | None = None) -> str:
    """The one ``error:`` line of a failed run; it must contain ``words`` (case-insensitive)."""
    assert run.code != 0, f"expected a failure, got exit 0; stdout: {run.out!r}"
    if code is not None:
        assert run.code == code, run
    assert "Traceback" not in run.err + run.out
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
    return lines[0]


def files_in(folder: Path) -> list[str]:
    """Files under ``folder`` (none when it does not exist); a training run's lock is not output."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME)


def assert_no_output(out: Path) -> None:
    assert not files_in(out), files_in(out)
    assert not out.exists(), f"{out} was left behind"


# ------------------------------------------------------------------------------------------ fixtures


def rgb(h: int = 40, w: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Good, unusual and broken image files, and a regular file to put paths under."""
    d = tmp_path_factory.mktemp("images")
    good = d / "good.png"
    Image.fromarray(rgb()).save(good)
    Image.fromarray(rgb()).save(d / "photo.jpg", quality=90)
    data = (d / "photo.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "text.png").write_text("this is a text file, not a PNG\n")
    (d / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(d / "one.png")
    Image.fromarray((np.random.default_rng(1).random((40, 50)) * 65535).astype(np.uint16)).save(d / "sixteen.png")
    Image.fromarray(rgb()).convert("P").save(d / "palette.png")
    Image.fromarray(rgb()).convert("RGBA").save(d / "rgba.png")
    Image.fromarray(rgb()).convert("L").save(d / "gray.png")
    (d / "a_file").write_text("a regular file")
    (d / "folder").mkdir()
    return {p.stem if p.is_file() else p.name: p for p in d.iterdir()}


def make_checkpoint(path: Path, task: str, record: dict) -> Path:
    """A checkpoint of an untrained tiny UNet, written as training writes them."""
    cfg = load_config(None, {"train.task": task, "model.base_width": 4, "model.depth": 2})
    torch.manual_seed(0)
    save_run_checkpoint(path, build_unet(cfg.model, 3, record["out_channels"]), cfg, record, epoch=0, metrics={})
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints of both tasks (as training writes them) and broken ones."""
    from ldwseg.datasets import dataset_info

    d = tmp_path_factory.mktemp("ckpts")
    info = dataset_info("synthetic")
    record = {
        "name": "synthetic",
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "palette": info.palette.tolist(),
        "ignore_index": info.ignore_index,
        "out_channels": info.num_classes,
    }
    seg = make_checkpoint(d / "seg.safetensors", "seg", record)
    make_checkpoint(d / "recon.safetensors", "recon", {"name": "photos", "out_channels": 3})
    (d / "garbage.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "truncated.safetensors").write_bytes(seg.read_bytes()[:-300])
    (d / "empty.safetensors").write_bytes(b"")
    (d / "notes.safetensors").write_text("not a checkpoint\n")
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(d / "foreign.safetensors"))  # no ldwseg metadata
    return {p.stem: p for p in d.iterdir()}


# ------------------------------------------------------------------------------------------ usage errors


USAGE_ERRORS = {
    "train --epochs abc": (["train", "--epochs", "abc"], ["--epochs", "integer", "ldwseg train --help"]),
    "train --epochs -3": (["train", "--epochs", "-3"], ["--epochs"]),
    "train --batch-size 0": (["train", "--batch-size", "0"], ["--batch-size"]),
    "train --wavelet-weight -1": (["train", "--wavelet-weight", "-1"], ["--wavelet-weight"]),
    "train unknown option": (["train", "--no-such-option"], ["--no-such-option"]),
    "sweep --epochs x": (["sweep", "--epochs", "x"], ["--epochs", "ldwseg sweep --help"]),
    "ablate without table": (["ablate"], ["table"]),
    "evaluate without checkpoint": (["evaluate"], ["checkpoint", "ldwseg evaluate --help"]),
    "evaluate --batch-size many": (["evaluate", "c.safetensors", "--batch-size", "many"], ["--batch-size"]),
    "evaluate --device tpu:0": (["evaluate", "c.safetensors", "--device", "tpu:0"], ["--device", "tpu"]),
    "predict without images": (["predict", "c.safetensors"], ["images"]),
    "reconstruct --levels 0": (["reconstruct", "x.png", "--levels", "0"], ["--levels"]),
    "reconstruct --levels three": (["reconstruct", "x.png", "--levels", "three"], ["--levels"]),
    "reconstruct --wavelet nosuch": (["reconstruct", "x.png", "--wavelet", "nosuch"], ["--wavelet", "nosuch"]),
    "reconstruct --wavelet random": (["reconstruct", "x.png", "--wavelet", "random"], ["--wavelet", "random"]),
    "reconstruct --device gpu": (["reconstruct", "x.png", "--device", "gpu"], ["--device", "gpu"]),
    "bench --repeats 0": (["bench", "--repeats", "0"], ["--repeats"]),
    "bench --threads -1": (["bench", "--threads", "-1"], ["--threads"]),
    "unknown command": (["frobnicate"], ["frobnicate", "ldwseg --help"]),
}


@pytest.mark.parametrize("args, words", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_are_one_line_with_exit_2(args, words):
    line = error_line(cli(*args), *words, code=2)
    assert "--help" in line


def test_help_and_version_still_work():
    run = cli("--version")
    assert run.code == 0 and run.out.startswith("ldwseg ")
    run = cli("train", "--help")
    assert run.code == 0 and "--epochs" in run.out and not run.err


# ------------------------------------------------------------------------------------------ train/sweep/ablate config


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("configs")
    (d / "malformed.yaml").write_text("model:\n  base_width: [4, 8\n  depth: 2\n")
    (d / "unknown_key.yaml").write_text("model:\n  base_widht: 4\n")
    (d / "unknown_section.yaml").write_text("modle:\n  base_width: 4\n")
    (d / "wrong_type.yaml").write_text("train:\n  epochs: many\n")
    (d / "a_list.yaml").write_text("- model\n- data\n")
    (d / "binary.yaml").write_bytes(bytes(range(128, 256)))
    return {p.stem: p for p in d.iterdir()}


CONFIG_CASES = {
    "unknown --dataset": (["--dataset", "imagenet"], ["imagenet", "voc12", "synthetic", "camvid"]),
    "--set unknown section": (["--set", "foo.bar=1"], ["foo", "model, data, optim, train"]),
    "--set unknown key": (["--set", "model.widht=4"], ["model.widht", "model.base_width", "model.depth"]),
    "--set without =": (["--set", "model.base_width"], ["model.base_width", "section.field=value"]),
    "--set wrong type": (["--set", "model.base_width=wide"], ["model.base_width", "int", "wide"]),
    "--set not finite": (["--set", "optim.lr=nan"], ["optim.lr", "finite"]),
    "--set huge model": (["--set", "model.depth=30"], ["model.depth", "parameters"]),
    "--set bad wavelet": (["--set", "model.wavelet=nosuch"], ["model.wavelet", "nosuch"]),
    "--set bad kernel": (["--set", "model.kernel_size=3"], ["kernel_size=3", "db2"]),
    "--set bad device": (["--set", "train.device=tpu"], ["train.device", "tpu"]),
    "--device name": (["--device", "gpu"], ["gpu", "cpu"]),
    "--amp unknown": (["--amp", "fp8"], ["fp8", "bf16"]),
    "--constraint unknown": (["--constraint", "strict"], ["strict", "paper", "orthogonal", "lattice"]),
    "--down unknown": (["--down", "avg"], ["avg", "maxpool", "ldw"]),
    "--up unknown": (["--up", "bilinear"], ["bilinear", "deconv"]),
    "--task unknown": (["--task", "classify"], ["classify", "seg", "recon"]),
    "--lr negative": (["--lr", "-0.1"], ["optim.lr", "positive"]),
    "--up ldw with maxpool": (["--down", "maxpool", "--up", "ldw"], ["model.up", "model.down"]),
    "--set huge crop": (["--set", "data.crop_size=100000"], ["data.crop_size", "8192"]),
    "--set huge batch": (["--set", "train.batch_size=100000", "--set", "data.crop_size=4096"], ["pixels per batch"]),
    "--set no steps": (["--set", "train.max_steps_per_epoch=0"], ["train.max_steps_per_epoch", ">= 1"]),
    "--set negative gamma": (["--set", "optim.gamma=-0.5"], ["optim.gamma"]),
    "--seed negative": (["--seed", "-1"], ["train.seed"]),
}


@pytest.mark.parametrize("args, words", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_train_refuses_a_bad_config(args, words, tmp_path):
    out = tmp_path / "run"
    error_line(cli("train", *TINY, *args, "--out", out), *words, code=2)
    assert_no_output(out)


@pytest.mark.parametrize(
    "name, words",
    [
        ("malformed", ["malformed.yaml", "not valid YAML", "line 3"]),
        ("unknown_key", ["model.base_widht", "model.base_width"]),
        ("unknown_section", ["modle", "model, data, optim, train"]),
        ("wrong_type", ["train.epochs", "int", "many"]),
        ("a_list", ["mapping"]),
        ("binary", ["binary.yaml", "not a text file"]),
    ],
)
def test_train_refuses_a_bad_config_file(configs, name, words, tmp_path):
    out = tmp_path / "run"
    error_line(cli("train", "--config", configs[name], "--out", out), *words, code=2)
    assert_no_output(out)


def test_config_file_missing_or_a_folder(tmp_path):
    error_line(cli("train", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "r"), "nope.yaml", "does not exist")
    error_line(cli("train", "--config", tmp_path, "--out", tmp_path / "r"), "is a folder", "YAML")
    assert_no_output(tmp_path / "r")


@NO_CUDA
@pytest.mark.parametrize(
    "args, words",
    [(["--device", "cuda"], ["CUDA", "cpu"]), (["--amp", "fp16"], ["fp16", "CUDA"])],
    ids=["cuda", "fp16"],
)
def test_cuda_options_on_a_cpu_only_machine(args, words, tmp_path):
    out = tmp_path / "run"
    error_line(cli("train", *TINY, *args, "--out", out), *words, code=2)
    assert_no_output(out)


def test_resume_in_an_empty_folder(tmp_path):
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for out in (new, empty):
        error_line(cli("train", *TINY, "--resume", "--out", out), "--resume", "missing", str(out), code=2)
    assert_no_output(new)
    assert files_in(empty) == [] and empty.is_dir()  # a folder the user made stays


def test_train_into_an_unwritable_place(images):
    a_file = images["a_file"]
    error_line(cli("train", *TINY, "--out", a_file), "a_file", "is a file", code=2)
    error_line(cli("train", *TINY, "--out", a_file / "run"), "a_file", "not a folder", code=2)
    error_line(cli("sweep", "--epochs", "1", *SMALL, "--out", a_file / "s"), "a_file", "not a folder", code=2)
    error_line(cli("ablate", "table3", "--epochs", "1", *SMALL, "--out", a_file), "a_file", "is a file", code=2)
    assert a_file.read_text() == "a regular file"


def test_sweep_checks_every_setting_before_training(tmp_path):
    out = tmp_path / "sweep"
    run = cli("sweep", "--epochs", "1", *SMALL, "--constraint", "paper", "--constraint", "strict", "--out", out)
    error_line(run, "strict", "orthogonal", code=2)
    assert_no_output(out)
    error_line(cli("sweep", "--wavelet-weights", "a,b", "--out", out), "--wavelet-weights", "'a,b'", code=2)
    error_line(cli("sweep", "--set", "foo.bar=1", "--out", out), "foo", code=2)
    assert_no_output(out)


def test_compare_report_needs_finished_runs(tmp_path):
    out = tmp_path / "cmp"
    variants = ["--variant", "max: model.down=maxpool model.up=deconv", "--variant", "ldw: "]
    error_line(cli("compare", *variants, "--report", "--out", out), "--report", "not a folder", code=2)
    assert_no_output(out)
    out.mkdir()
    error_line(cli("compare", *variants, "--report", "--out", out), "no seed", "without --report", code=2)
    assert not any(out.iterdir())


def test_ablate_refuses_an_unknown_table_or_key(tmp_path):
    out = tmp_path / "ablation"
    error_line(cli("ablate", "table9", "--epochs", "1", "--out", out), "table9", "table3", "table6", code=2)
    error_line(cli("ablate", "table3", "--set", "model.nope=1", "--out", out), "model.nope", code=2)
    assert_no_output(out)


# ------------------------------------------------------------------------------------------ data sets


def voc_tree(root: Path, *, train: int = 3, val: int = 2, size: int = 40) -> Path:
    """``root/VOCdevkit/VOC2012`` with random images and 21-class masks; returns VOCdevkit."""
    voc = root / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for split, count in (("train", train), ("val", val)):
        ids = [f"{split}{i}" for i in range(count)]
        for i in ids:
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{i}.jpg")
            labels = rng.integers(0, 21, (size, size), dtype=np.uint8)
            labels[:4] = 255
            Image.fromarray(labels, mode="L").save(voc / "SegmentationClass" / f"{i}.png")
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root / "VOCdevkit"


def _mask_size(voc: Path) -> str:
    Image.new("L", (30, 20)).save(voc / "SegmentationClass" / "train1.png")
    return "train1.png"


def _labels(voc: Path) -> str:
    Image.fromarray(np.full((40, 40), 77, np.uint8), mode="L").save(voc / "SegmentationClass" / "train1.png")
    return "train1.png"


def _text_image(voc: Path) -> str:
    (voc / "JPEGImages" / "train1.jpg").write_text("not a JPEG")
    return "train1.jpg"


def _truncated_image(voc: Path) -> str:
    path = voc / "JPEGImages" / "train1.jpg"
    path.write_bytes(path.read_bytes()[:300])
    return "train1.jpg"


def _empty_mask(voc: Path) -> str:
    (voc / "SegmentationClass" / "train1.png").write_bytes(b"")
    return "train1.png"


def _tiny_image(voc: Path) -> str:
    Image.new("RGB", (1, 1)).save(voc / "JPEGImages" / "train1.jpg")
    Image.new("L", (1, 1)).save(voc / "SegmentationClass" / "train1.png")
    return "train1.jpg"


def _missing_image(voc: Path) -> str:
    (voc / "JPEGImages" / "train1.jpg").unlink()
    return "train1.jpg"


def _colour_mask(voc: Path) -> str:
    Image.new("RGB", (40, 40), (128, 0, 0)).save(voc / "SegmentationClass" / "train1.png")
    return "train1.png"


BAD_SAMPLES = {
    "mask size differs": _mask_size,
    "labels out of range": _labels,
    "text file as image": _text_image,
    "truncated JPEG": _truncated_image,
    "0-byte mask": _empty_mask,
    "1x1 image": _tiny_image,
    "missing image": _missing_image,
    "colour mask": _colour_mask,
}


@pytest.mark.parametrize("spoil", BAD_SAMPLES.values(), ids=BAD_SAMPLES.keys())
def test_a_bad_sample_stops_training_before_it_starts(spoil, tmp_path):
    devkit = voc_tree(tmp_path / "data")
    bad = spoil(devkit / "VOC2012")
    out = tmp_path / "run"
    run = cli("train", *TINY, "--dataset", "voc12", "--data-root", devkit, "--out", out)
    error_line(run, bad, "--skip-bad", code=2)
    assert_no_output(out)


@pytest.mark.parametrize("spoil", [_mask_size, _labels, _truncated_image], ids=["mask size", "labels", "truncated"])
def test_skip_bad_leaves_the_bad_sample_out(spoil, tmp_path):
    devkit = voc_tree(tmp_path / "data")
    bad = spoil(devkit / "VOC2012")
    out = tmp_path / "run"
    run = cli("train", *TINY, "--dataset", "voc12", "--data-root", devkit, "--out", out, "--skip-bad")
    assert run.code == 0, run
    assert "Traceback" not in run.err and bad in run.err  # the skipped file is listed
    assert "skipped 1 bad samples" in run.out  # and counted in the summary
    assert (out / "best.safetensors").is_file()


def test_evaluate_on_a_bad_sample(tmp_path):
    devkit = voc_tree(tmp_path / "data")
    bad = _labels(devkit / "VOC2012")
    record = {"name": "voc12", "num_classes": 21, "out_channels": 21}
    ckpt = make_checkpoint(tmp_path / "voc.safetensors", "seg", record)
    args = ("evaluate", ckpt, "--dataset", "voc12", "--data-root", devkit, "--split", "train", "--device", "cpu")
    error_line(cli(*args), bad, "--skip-bad", code=2)
    run = cli(*args, "--skip-bad", "--json")
    assert run.code == 0, run
    assert '"skipped": 1' in run.out and '"images": 2' in run.out


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda v: (v / "ImageSets/Segmentation/train.txt").write_text("\n"), ["train.txt", "empty"]),
        (lambda v: (v / "ImageSets/Segmentation/train.txt").unlink(), ["train.txt", "does not exist", "val"]),
    ],
    ids=["empty split file", "missing split file"],
)
def test_split_files(setup, words, tmp_path):
    devkit = voc_tree(tmp_path / "data")
    setup(devkit / "VOC2012")
    out = tmp_path / "run"
    error_line(cli("train", *TINY, "--dataset", "voc12", "--data-root", devkit, "--out", out), *words, code=2)
    assert_no_output(out)


def test_voc_root_one_level_off(tmp_path):
    devkit = voc_tree(tmp_path / "data")
    out = tmp_path / "run"
    high = error_line(cli("train", *TINY, "--dataset", "voc12", "--data-root", devkit.parent, "--out", out),
                      "one level too high", code=2)  # fmt: skip
    assert f"--data-root at {devkit}" in high
    low = error_line(cli("train", *TINY, "--dataset", "voc12", "--data-root", devkit / "VOC2012" / "JPEGImages",
                         "--out", out), "inside the VOC2012 folder", code=2)  # fmt: skip
    assert f"--data-root at {devkit}" in low
    error_line(cli("train", *TINY, "--dataset", "voc12", "--data-root", tmp_path / "nope", "--out", out),
               "nope", "does not exist", code=2)  # fmt: skip
    error_line(cli("train", *TINY, "--dataset", "voc12", "--out", out), "voc12", "--data-root", code=2)
    assert_no_output(out)


def test_camvid_and_folder_roots_one_level_off(tmp_path):
    camvid = tmp_path / "data" / "CamVid"
    for sub in ("train", "trainannot", "val", "valannot"):
        (camvid / sub).mkdir(parents=True)
        pixels = np.zeros((16, 16), np.uint8) if sub.endswith("annot") else rgb(16, 16)
        Image.fromarray(pixels).save(camvid / sub / "a.png")
    out = tmp_path / "run"
    line = error_line(cli("train", *TINY, "--dataset", "camvid", "--data-root", camvid.parent, "--out", out),
                      "one level too high", code=2)  # fmt: skip
    assert str(camvid) in line
    error_line(cli("train", *TINY, "--dataset", "camvid", "--data-root", camvid / "train", "--out", out),
               "one level too low", code=2)  # fmt: skip
    error_line(cli("train", *TINY, "--dataset", "folder", "--data-root", camvid, "--set", "data.num_classes=2",
                   "--out", out), "images/", code=2)  # fmt: skip
    assert_no_output(out)


# ------------------------------------------------------------------------------------------ checkpoints


BAD_CHECKPOINTS = {
    "missing": ("nope", ["nope.safetensors", "does not exist"]),
    "random bytes": ("garbage", ["garbage.safetensors", "not a safetensors checkpoint"]),
    "truncated": ("truncated", ["truncated.safetensors", "truncated"]),
    "0-byte": ("empty", ["empty.safetensors", "not a safetensors checkpoint"]),
    "text": ("notes", ["notes.safetensors", "not a safetensors checkpoint"]),
}


def _ckpt(ckpts: dict[str, Path], name: str) -> Path:
    return ckpts[name] if name in ckpts else ckpts["seg"].with_name(f"{name}.safetensors")


def _commands(ckpt: Path, images: dict[str, Path], out: Path) -> dict[str, list]:
    return {
        "evaluate": ["evaluate", ckpt, "--device", "cpu"],
        "predict": ["predict", ckpt, images["good"], "--out", out, "--device", "cpu"],
        "reconstruct": ["reconstruct", images["good"], "--checkpoint", ckpt, "--out", out / "r.png", "--device", "cpu"],
        "filters": ["filters", ckpt, "--out", out / "f.png"],
    }


@pytest.mark.parametrize("command", ["evaluate", "predict", "reconstruct", "filters"])
@pytest.mark.parametrize("name, words", BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS.keys())
def test_bad_checkpoints(ckpts, images, command, name, words, tmp_path):
    out = tmp_path / "out"
    error_line(cli(*_commands(_ckpt(ckpts, name), images, out)[command]), *words, code=2)
    assert_no_output(out)


@pytest.mark.parametrize("command", ["evaluate", "predict", "reconstruct", "filters"])
def test_a_folder_given_as_checkpoint(ckpts, images, command, tmp_path):
    out = tmp_path / "out"
    error_line(cli(*_commands(ckpts["seg"].parent, images, out)[command]), "not a file", code=2)
    assert_no_output(out)


@pytest.mark.parametrize("command", ["evaluate", "predict", "reconstruct", "filters"])
def test_a_checkpoint_without_metadata(ckpts, images, command, tmp_path):
    out = tmp_path / "out"
    error_line(cli(*_commands(ckpts["foreign"], images, out)[command]), "foreign.safetensors", "metadata", code=2)
    assert_no_output(out)


@pytest.mark.parametrize(
    "command, ckpt, words",
    [
        ("evaluate", "recon", ["reconstruction checkpoint", "segmentation"]),
        ("predict", "recon", ["reconstruction checkpoint", "segmentation"]),
        ("reconstruct", "seg", ["segmentation checkpoint", "reconstruction"]),
    ],
)
def test_a_checkpoint_of_the_other_task(ckpts, images, command, ckpt, words, tmp_path):
    out = tmp_path / "out"
    error_line(cli(*_commands(ckpts[ckpt], images, out)[command]), *words, code=2)
    assert_no_output(out)


@NO_CUDA
@pytest.mark.parametrize("command", ["evaluate", "predict", "reconstruct"])
def test_cuda_device_on_a_cpu_only_machine(ckpts, images, command, tmp_path):
    out = tmp_path / "out"
    args = _commands(ckpts["recon" if command == "reconstruct" else "seg"], images, out)[command]
    args[args.index("--device") + 1] = "cuda"
    error_line(cli(*args), "CUDA", "--device cpu", code=2)
    assert_no_output(out)


def test_evaluate_on_data_it_does_not_fit(ckpts, tmp_path):
    error_line(cli("evaluate", ckpts["seg"], "--dataset", "imagenet"), "imagenet", "voc12", code=2)
    error_line(cli("evaluate", ckpts["seg"], "--split", "nosplit"), "nosplit.txt", "does not exist", code=2)
    devkit = voc_tree(tmp_path / "data", train=1, val=1)
    error_line(cli("evaluate", ckpts["seg"], "--dataset", "voc12", "--data-root", devkit), "6 classes", "21", code=2)


# ------------------------------------------------------------------------------------------ image files


BAD_IMAGES = {
    "missing": ("nope.png", ["nope.png", "does not exist"]),
    "text named .png": ("text", ["text.png", "not an image"]),
    "truncated JPEG": ("truncated", ["truncated.jpg", "truncated"]),
    "0-byte": ("empty", ["empty.png", "empty"]),
    "1x1": ("one", ["one.png", "1x1"]),
    "a folder": ("folder", ["folder", "directory"]),
}
PREDICT_BAD_IMAGES = {**BAD_IMAGES, "a folder": ("folder", ["folder", "holds no images"])}  # predict reads folders


def _image(images: dict[str, Path], name: str) -> Path:
    return images[name] if name in images else images["good"].with_name(name)


@pytest.mark.parametrize("name, words", PREDICT_BAD_IMAGES.values(), ids=PREDICT_BAD_IMAGES.keys())
def test_predict_refuses_a_bad_image(ckpts, images, name, words, tmp_path):
    out = tmp_path / "masks"
    run = cli("predict", ckpts["seg"], images["good"], _image(images, name), "--out", out, "--device", "cpu")
    error_line(run, *words, code=2)
    assert_no_output(out)  # every image is checked before the first mask is written


@pytest.mark.parametrize("name, words", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_reconstruct_refuses_a_bad_image(ckpts, images, name, words, tmp_path):
    image = _image(images, name)
    error_line(cli("reconstruct", image, "--out", tmp_path / "r.png"), *words, code=2)
    error_line(cli("reconstruct", image, "--checkpoint", ckpts["recon"], "--device", "cpu"), *words, code=2)
    assert not list(tmp_path.iterdir())
    assert not list(images["good"].parent.glob("*_recon*")) and not list(images["good"].parent.glob("*_ae*"))


@pytest.mark.parametrize("name", ["sixteen", "palette", "rgba", "gray"])
def test_unusual_images_work(ckpts, images, name, tmp_path):
    image = images[name]
    run = cli("predict", ckpts["seg"], image, "--out", tmp_path / "masks", "--device", "cpu")
    assert run.code == 0, run
    assert Image.open(tmp_path / "masks" / f"{name}_mask.png").size == Image.open(image).size
    for extra in ([], ["--checkpoint", ckpts["recon"], "--device", "cpu"]):
        out = tmp_path / f"recon{len(extra)}.png"
        run = cli("reconstruct", image, "--out", out, *extra)
        assert run.code == 0, run
        assert Image.open(out).size == Image.open(image).size


@pytest.mark.parametrize(
    "args, words",
    [
        (["--levels", "99"], ["levels=99", "at most"]),
        (["--out", "{tmp}/r.xyz"], ["r.xyz", ".png"]),
        (["--out", "{tmp}"], ["is a folder"]),
        (["--out", "{file}/r.png"], ["a_file", "not a folder"]),
        (["--checkpoint", "{recon}", "--levels", "2", "--device", "cpu"], ["--levels", "--checkpoint"]),
    ],
    ids=["too many levels", "unknown suffix", "out is a folder", "out under a file", "levels with a checkpoint"],
)
def test_reconstruct_options(ckpts, images, args, words, tmp_path):
    values = {"tmp": tmp_path, "file": images["a_file"], "recon": ckpts["recon"]}
    args = [a.format(**values) for a in args]
    error_line(cli("reconstruct", images["good"], *args), *words, code=2)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["{file}", "{file}/masks"], ids=["out is a file", "out under a file"])
def test_predict_into_an_unwritable_place(ckpts, images, where):
    out = where.format(file=images["a_file"])
    error_line(cli("predict", ckpts["seg"], images["good"], "--out", out, "--device", "cpu"), "a_file", code=2)
    assert images["a_file"].is_file() and images["a_file"].read_text() == "a regular file"


def test_filters_into_an_unwritable_place(ckpts, images):
    error_line(cli("filters", ckpts["seg"], "--out", images["a_file"] / "f.png"), "a_file", "not a folder", code=2)
    error_line(cli("filters", ckpts["seg"], "--out", images["folder"]), "is a folder", code=2)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_a_read_only_output_folder(ckpts, images, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        error_line(cli("reconstruct", images["good"], "--out", locked / "r.png"), "r.png", "writable")
        error_line(cli("filters", ckpts["seg"], "--out", locked / "f.png"), "permission denied", "locked")
        error_line(cli("train", *TINY, "--out", locked / "run"), "permission denied", "locked")
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------------------------------ the last resort


def _raise(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    "exc, code, words",
    [
        (RuntimeError("boom"), 1, ["unexpected RuntimeError: boom", "LDWSEG_DEBUG=1", "report it"]),
        (KeyError("k"), 1, ["unexpected KeyError", "LDWSEG_DEBUG=1"]),
        (MemoryError(), 1, ["out of memory", "--batch-size"]),
        (OSError(errno.ENOSPC, "No space left on device", "/full/disk/x"), 1, ["no space left", "/full/disk/x"]),
        (PermissionError(errno.EACCES, "Permission denied", "/etc/x"), 2, ["permission denied", "/etc/x"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/d"), 2, ["/tmp/d", "is a folder"]),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/tmp/f/x"), 2, ["/tmp/f/x", "not a folder"]),
        (FileNotFoundError(errno.ENOENT, "No such file", "/gone"), 2, ["/gone", "not found"]),
        (DataError("line one\nline two"), 2, ["line one line two"]),
        (Interrupted("stopped at epoch 2, step 5; saved last.state.pt"), 130, ["stopped at epoch 2"]),
        (Interrupted("stopped by SIGTERM", exit_code=143), 143, ["SIGTERM"]),
        (KeyboardInterrupt(), 130, ["interrupted"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_any_failure_is_one_line(monkeypatch, exc, code, words):
    import ldwseg.analysis.bench

    monkeypatch.setattr(ldwseg.analysis.bench, "run_pool_benchmark", _raise(exc))
    error_line(cli("bench", "--quick"), *words, code=code)


def test_debug_mode_shows_the_traceback(monkeypatch):
    import ldwseg.analysis.bench

    monkeypatch.setattr(ldwseg.analysis.bench, "run_pool_benchmark", _raise(RuntimeError("boom")))
    monkeypatch.setenv("LDWSEG_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["bench", "--quick"])


def test_warnings_are_one_line(monkeypatch):
    import warnings

    import ldwseg.analysis.bench

    def warn_then_fail(*args, **kwargs):
        warnings.warn("something odd\nover two lines", UserWarning, stacklevel=1)
        raise DataError("the real problem")

    monkeypatch.setattr(ldwseg.analysis.bench, "run_pool_benchmark", warn_then_fail)
    run = cli("bench", "--quick")
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert lines == ["warning: UserWarning: something odd over two lines", "error: the real problem"], lines


# ------------------------------------------------------------------------------------------ the installed script


def _script() -> list[str]:
    script = Path(sys.executable).with_name("ldwseg")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ldwseg"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--epochs", "abc"], ["--epochs"]),
        (["reconstruct", "{text}"], ["text.png", "not an image"]),
    ],
    ids=["usage error", "bad image"],
)
def test_the_installed_script_prints_no_traceback(images, args, words, data_dir):
    args = [a.format(text=images["text"]) for a in args]
    env = {**os.environ, "LDWSEG_DATA": str(data_dir)}
    proc = subprocess.run([*_script(), *args], capture_output=True, text=True, timeout=120, env=env)
    error_line(Run(proc.returncode, proc.stdout, proc.stderr), *words, code=2)


def test_module_entry_point_uses_main(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ldwseg", "evaluate", tmp_path / "nope.safetensors"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    error_line(Run(proc.returncode, proc.stdout, proc.stderr), "nope.safetensors", "does not exist", code=2)


@pytest.mark.parametrize("palette", [None, "abc", [[0, 0, 300]] * 6, [[0, 0, 0]] * 2])
def test_predict_refuses_an_edited_palette(ckpts, images, palette, tmp_path):
    from ldwseg.datasets import dataset_info

    info = dataset_info("synthetic")
    record = {
        "name": "synthetic",
        "num_classes": info.num_classes,
        "palette": palette,
        "out_channels": info.num_classes,
    }
    ckpt = make_checkpoint(tmp_path / "edited.safetensors", "seg", record)
    out = tmp_path / "out"
    error_line(cli("predict", ckpt, images["good"], "--out", out, "--device", "cpu"), "dataset.palette", code=2)
    assert_no_output(out)


def test_a_failed_train_removes_the_folders_it_created(tmp_path):
    out = tmp_path / "runs" / "nested" / "voc"
    error_line(cli("train", "--dataset", "voc12", "--out", out), "data root", code=2)
    assert not (tmp_path / "runs").exists()


def test_predict_refuses_a_folder_without_images_or_its_own_input_folder(ckpts, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    out = tmp_path / "out"
    error_line(cli("predict", ckpts["seg"], empty, "--out", out, "--device", "cpu"), str(empty), "no images", code=2)
    assert_no_output(out)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rgb()).save(photos / "x.png")
    error_line(cli("predict", ckpts["seg"], photos, "--out", photos), "input folder", "another folder", code=2)
    assert sorted(p.name for p in photos.iterdir()) == ["x.png"]


def test_train_refuses_resume_with_overwrite(tmp_path):
    out = tmp_path / "run"
    error_line(cli("train", *TINY, "--resume", "--overwrite", "--out", out), "--resume", "--overwrite", code=2)
    assert_no_output(out)


def test_predict_refuses_two_inputs_that_would_write_the_same_files(ckpts, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rgb()).save(tmp_path / folder / "x.png")
    out = tmp_path / "out"
    run = cli("predict", ckpts["seg"], tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", out)
    error_line(run, "x_mask.png", "separate --out", code=2)
    assert_no_output(out)
    twice = cli("predict", ckpts["seg"], tmp_path / "a" / "x.png", tmp_path / "a" / "x.png", "--out", out)
    assert twice.code == 0 and sorted(p.name for p in out.iterdir()) == ["x_mask.png", "x_overlay.png"]
