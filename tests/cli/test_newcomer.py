"""A newcomer's first hour: runs say what they do, never replace a run silently, and draw pictures a person can read.

Every command runs in-process through typer's CliRunner on tiny data (the synthetic set,
UNets 4 channels wide); stdout and stderr are read apart.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from ldwseg.cli import app
from ldwseg.cli.train_cmd import default_out
from ldwseg.datasets import dataset_info, voc_palette
from ldwseg.engine.checkpoints import load_run_model, save_run_checkpoint
from ldwseg.errors import ConfigError
from ldwseg.models import build_unet
from ldwseg.seg.predict import background_label, overlay_with_legend
from ldwseg.tasks import load_config
from ldwseg.tasks import train as train_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
SMALL = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
         "--set", "train.batch_size=2", "--set", "train.max_steps_per_epoch=1", "--set", "train.device=cpu"]  # fmt: skip
RUN_FILES = ["best.safetensors", "last.safetensors", "last.state.pt", "metrics.csv", "config.yaml", "environment.json"]


def invoke(*args: object, code: int = 0) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def error_line(result: Result) -> str:
    """The one line of a refused command (exit 2, no traceback, nothing else on stderr)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, which strict parsers (JavaScript, jq, Go) reject."""

    def refuse(name: str):
        raise AssertionError(f"non-strict JSON constant {name} in {text!r}")

    return json.loads(text, parse_constant=refuse)


def epochs_of(out: Path) -> list[str]:
    with (out / "metrics.csv").open(newline="") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> tuple[Path, Result]:
    """A finished 2-epoch run and what ``ldwseg train`` said while training it."""
    out = tmp_path_factory.mktemp("first") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LDWSEG_DATA", str(data_dir))
        result = invoke("train", "--epochs", 2, *SMALL, "--out", out)
    return out, result


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    return out


# --- a run describes itself -----------------------------------------------------------------


def test_the_start_line_says_what_the_run_does(finished):
    out, result = finished
    (start,) = [line for line in result.stderr.splitlines() if "parameters" in line]
    params = sum(p.numel() for p in load_run_model(out / "best.safetensors")[0].parameters())
    classes, threads = dataset_info("synthetic").num_classes, torch.get_num_threads()
    assert re.fullmatch(
        rf"seg on synthetic: \d+ train / \d+ val samples, {classes} classes; cpu, {threads} threads?, "
        rf"1 process; {params:,} parameters; writing to {re.escape(str(out))}",
        start,
    ), start


def test_epoch_lines_keep_an_eta_without_a_terminal(finished):
    _, result = finished
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2
    assert re.search(r"  \d+\.\ds, ~(\d+\.\ds|\d+s|\d+m\d\ds) left$", lines[0]), lines[0]  # CliRunner: no terminal
    assert lines[1].startswith("epoch 2/2") and "left" not in lines[1]


def test_the_end_line_names_every_file_written(finished):
    out, result = finished
    written = [*RUN_FILES, *(["tensorboard/"] if (out / "tensorboard").is_dir() else [])]
    end = result.stdout.strip().splitlines()[-1]
    assert end.startswith("best val mIoU ") and end.endswith(f"; wrote {out}: {', '.join(written)}"), end


def test_metrics_csv_numbers_epochs_as_the_console_does(finished):
    out, result = finished
    assert epochs_of(out) == ["1", "2"]
    assert [line.split()[1] for line in result.stderr.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]


# --- an output folder is never replaced silently --------------------------------------------


def test_a_second_train_into_a_run_is_refused_in_one_line(run_copy):
    before = snapshot(run_copy)
    line = error_line(invoke("train", "--epochs", 2, *SMALL, "--out", run_copy, code=2))
    assert line == (
        f"error: {run_copy} holds an earlier run (best.safetensors, last.safetensors, last.state.pt); pass --resume "
        "to continue it, --overwrite to replace it, or choose another --out"
    )
    assert snapshot(run_copy) == before


def test_the_library_refuses_it_too(run_copy):
    cfg = load_config(None, {"train.epochs": 1, "model.base_width": 4, "model.depth": 2, "data.crop_size": 32,
                             "train.batch_size": 2, "train.max_steps_per_epoch": 1, "train.device": "cpu"})  # fmt: skip
    before = snapshot(run_copy)
    with pytest.raises(ConfigError, match="holds an earlier run"):
        train_run(cfg, run_copy)
    assert snapshot(run_copy) == before


def test_resume_goes_on_and_overwrite_replaces(run_copy):
    more = invoke("train", "--epochs", 3, *SMALL, "--out", run_copy, "--resume")
    assert "resuming" in more.stderr and epochs_of(run_copy) == ["1", "2", "3"]
    (run_copy / "notes.txt").write_text("mine")
    (run_copy / "tensorboard" / "old.tfevents").write_text("an earlier run's events")
    again = invoke("train", "--epochs", 1, *SMALL, "--out", run_copy, "--overwrite")
    assert "--overwrite: removed the earlier run's" in again.stderr
    assert epochs_of(run_copy) == ["1"]
    assert (run_copy / "notes.txt").read_text() == "mine"  # only the run's own files go
    assert not (run_copy / "tensorboard" / "old.tfevents").exists()
    line = error_line(invoke("train", *SMALL, "--out", run_copy, "--resume", "--overwrite", code=2))
    assert "--resume" in line and "--overwrite" in line and "one of them" in line


def test_default_folders_name_what_differs(tmp_path, monkeypatch):
    def out(**overrides) -> Path:
        return default_out(load_config(None, overrides))

    assert out() == Path("runs/synthetic")
    assert out(**{"model.down": "maxpool", "model.up": "deconv"}) == Path("runs/synthetic-maxpool-deconv")
    assert out(**{"model.constraint": "paper", "train.wavelet_weight": 0.1}) == Path("runs/synthetic-paper-w0.1")
    assert out(**{"model.attention": True, "train.epochs": 3}) == Path("runs/synthetic-attention")
    assert out(**{"train.wavelet_weight": 0.5}) == Path("runs/synthetic")  # lattice: the weight changes nothing
    assert out(**{"train.task": "recon"}) == Path("runs/recon-photos")  # the task's own defaults do not count
    # the README's quick start, then its max-pool baseline, both with the default --out
    monkeypatch.chdir(tmp_path)
    invoke("train", "--epochs", 1, *SMALL)
    baseline = invoke("train", "--epochs", 1, *SMALL, "--down", "maxpool", "--up", "deconv")
    assert "writing to runs/synthetic-maxpool-deconv" in baseline.stderr
    for folder in ("synthetic", "synthetic-maxpool-deconv"):
        assert (tmp_path / "runs" / folder / "best.safetensors").is_file()


def test_a_constraint_weight_without_a_constraint_loss_is_said_once():
    import logging

    from ldwseg.cli.compare_cmd import _train_params
    from ldwseg.cli.train_cmd import config_of

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("ldwseg").addHandler(handler)
    try:
        config_of(_train_params(["--wavelet-weight", "0.5"]))
        config_of(_train_params(["--wavelet-weight", "0.5", "--constraint", "orthogonal"]))
        config_of(_train_params([]))
    finally:
        logging.getLogger("ldwseg").removeHandler(handler)
    lines = [r.getMessage() for r in records if "--wavelet-weight" in r.getMessage()]
    assert len(lines) == 1 and "no effect with model.constraint=lattice" in lines[0]


# --- several runs in one command: labelled, resumed, never mixed -----------------------------


def test_sweep_labels_its_epoch_lines_and_goes_on_where_it_stopped(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--wavelet-weights", "0", "--constraint", "orthogonal", "--epochs", 1, *SMALL, "--out", out]
    first = invoke(*args)
    assert re.search(r"^orthogonal_w0: epoch 1/1  loss ", first.stderr, re.MULTILINE), first.stderr
    assert re.search(r"^orthogonal_w0: seg on synthetic: ", first.stderr, re.MULTILINE)
    run = snapshot(out / "orthogonal_w0")
    again = invoke(*args)
    assert "orthogonal_w0: finished earlier, kept" in again.stderr and "epoch 1/1" not in again.stderr
    assert again.stdout == first.stdout
    assert {k: v for k, v in snapshot(out / "orthogonal_w0").items() if k.endswith("safetensors")} == {
        k: v for k, v in run.items() if k.endswith("safetensors")
    }
    other = error_line(invoke(*args[:-2], "--set", "optim.lr=0.01", "--out", out, code=2))
    assert "holds a run with other settings" in other and str(out / "orthogonal_w0") in other


def test_ablate_labels_each_setting(tmp_path):
    from ldwseg.analysis.sweep import ABLATIONS

    result = invoke("ablate", "table3", "--epochs", 1, *SMALL, "--out", tmp_path / "ablation")
    for label, _ in ABLATIONS["table3"]:
        assert re.search(rf"^{re.escape(label)}: epoch 1/1  loss ", result.stderr, re.MULTILINE), (label, result.stderr)


# --- pictures a person can read -------------------------------------------------------------


def test_overlay_has_a_legend_of_the_classes_it_shows_and_leaves_the_background_alone():
    names = list(dataset_info("synthetic").class_names)
    palette = voc_palette(len(names))
    rgb = np.random.default_rng(0).integers(0, 256, (40, 200, 3), dtype=np.uint8)
    mask = np.zeros((40, 200), np.uint8)
    mask[5:20, 5:60] = 1
    mask[20:35, 100:180] = 3
    mask[0:3, 0:3] = 255  # ignored: left alone too
    shown = overlay_with_legend(rgb, mask, palette, names, background=background_label(names))
    image, strip = shown[:40], shown[40:]
    assert strip.shape[0] > 0 and strip.shape[1] == 200
    untouched = (mask == 0) | (mask == 255)
    np.testing.assert_array_equal(image[untouched], rgb[untouched])
    assert (np.abs(image[mask == 1].astype(int) - rgb[mask == 1]) > 0).any()  # the shapes are tinted
    for label in (1, 3):  # each class shown has its swatch: a square of exactly its colour
        assert (strip == palette[label]).all(-1).sum() >= 64, names[label]
    for label in (2, 4, 5):  # classes not in the mask are not listed
        assert not (strip == palette[label]).all(-1).any(), names[label]


def test_the_background_class():
    assert background_label(list(dataset_info("voc12").class_names)) == 0
    assert background_label(["class0", "class1"]) == 0  # two classes: 1 is the foreground
    assert background_label(list(dataset_info("camvid").class_names)) is None  # sky is a class like the others


def checkpoint(path: Path, task: str, **model) -> Path:
    """An untrained tiny UNet saved as training saves it, with the synthetic set's classes."""
    info = dataset_info("synthetic")
    record = {"name": "synthetic", "num_classes": info.num_classes, "class_names": list(info.class_names),
              "palette": info.palette.tolist(), "out_channels": info.num_classes if task == "seg" else 3}  # fmt: skip
    overrides = {"train.task": task, "model.base_width": 4, "model.depth": 2}
    cfg = load_config(None, {**overrides, **{f"model.{k}": v for k, v in model.items()}})
    torch.manual_seed(0)
    save_run_checkpoint(path, build_unet(cfg.model, 3, record["out_channels"]), cfg, record, epoch=0, metrics={})
    return path


def test_predict_a_folder_of_images(tmp_path):
    ckpt = checkpoint(tmp_path / "seg.safetensors", "seg")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)).save(photos / name)
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert "wrote 4 files" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png"]
    rgb = np.asarray(Image.open(photos / "a.png"))
    mask = np.asarray(Image.open(out / "a_mask.png"))
    shown = np.asarray(Image.open(out / "a_overlay.png"))
    assert mask.shape == rgb.shape[:2] and shown.shape[0] > rgb.shape[0] and shown.shape[1] == rgb.shape[1]
    np.testing.assert_array_equal(shown[:36][mask == 0], rgb[mask == 0])
    palette = dataset_info("synthetic").palette
    for label in set(np.unique(mask).tolist()) - {0}:
        assert (shown[36:] == palette[label]).all(-1).any(), label


def test_filters_prints_the_change_and_only_the_pools_own_terms(tmp_path):
    ckpt = checkpoint(tmp_path / "seg.safetensors", "seg", constraint="orthogonal")
    header = invoke("filters", ckpt, "--out", tmp_path / "f.png").stdout.splitlines()[0]
    assert "max change" in header and "low_orthonormal" in header and "paper." not in header


# --- consistent outputs: file names, strict JSON ---------------------------------------------


def test_reconstruct_with_and_without_a_checkpoint_write_different_files(tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image)
    exact = strict_json(invoke("reconstruct", image, "--json").stdout)
    assert exact == {
        "psnr": None,
        "exact": True,
        "ssim": pytest.approx(1.0),
        "output": str(tmp_path / "photo_recon.png"),
    }
    ckpt = checkpoint(tmp_path / "recon.safetensors", "recon")
    model = strict_json(invoke("reconstruct", image, "--checkpoint", ckpt, "--device", "cpu", "--json").stdout)
    assert model["output"] == str(tmp_path / "photo_ae.png") and model["exact"] is False
    assert isinstance(model["psnr"], float)
    assert (tmp_path / "photo_recon.png").is_file() and (tmp_path / "photo_ae.png").is_file()
    text = invoke("reconstruct", image).stdout
    assert "PSNR inf (exact)" in text


def test_every_json_output_is_strict(finished, tmp_path):
    out, _ = finished
    report = strict_json(invoke("evaluate", out / "best.safetensors", "--json", "--device", "cpu").stdout)
    assert "miou" in report
    assert strict_json(invoke("filters", out / "best.safetensors", "--json").stdout)["pools"]
    summary = strict_json(invoke(
        "compare", "--variant", "ldw: model.down=ldw", "--variant", "max: model.down=maxpool model.up=deconv",
        "--seeds", "0", "--epochs", 1, *SMALL, "--out", tmp_path / "compare", "--json",
    ).stdout)  # fmt: skip
    assert [v["t"] for v in summary["variants"]] == [None, None]  # one seed: t is undefined, and null
