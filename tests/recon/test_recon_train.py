"""End to end: the autoencoding task, reconstruct with a checkpoint, filters, sweep and ablations."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.engine.checkpoints import load_run_model
from ldwseg.io.weights import read_metadata
from ldwseg.recon.autoencode import autoencode
from ldwseg.recon.data import ImageCrops, recon_files
from ldwseg.recon.quality import PSNR_CAP

runner = CliRunner()
TINY = [
    "--set", "model.base_width=4", "--set", "data.crop_size=32", "--set", "train.batch_size=8",
    "--set", "train.max_steps_per_epoch=2",
]  # fmt: skip


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def recon_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("recon") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LDWSEG_DATA", str(data_dir))
        invoke("train", "--task", "recon", "--out", str(out), "--epochs", "1", *TINY)
    return out


def test_recon_training_uses_no_skips_and_writes_a_recon_checkpoint(recon_run):
    meta = read_metadata(recon_run / "best.safetensors")
    assert meta["task"] == "recon"
    assert meta["config"]["model"]["skip"] is False and meta["config"]["train"]["loss"] == "l1"
    assert meta["dataset"]["out_channels"] == 3
    (row,) = list(csv.DictReader((recon_run / "metrics.csv").open()))
    # the logged score, recomputed by scikit-image from the saved network's outputs on the held-out photos
    model, _, cfg = load_run_model(recon_run / "best.safetensors", task="recon")
    val = ImageCrops(recon_files(cfg.data.dataset, None, cfg.data.val_split), crop_size=cfg.data.crop_size, train=False)
    scores = []
    with torch.no_grad():
        for x, _ in val:
            out = autoencode(model, x[None]).clamp(0, 1)[0]
            scores.append(min(peak_signal_noise_ratio(x.numpy(), out.numpy(), data_range=1.0), PSNR_CAP))
    assert float(row["val_psnr"]) == pytest.approx(float(np.mean(scores)), abs=1e-3)


def test_the_embedded_photos_are_real_and_held_out(data_dir, recon_run):
    val = sorted(p.name for p in (data_dir / "photos" / "val").iterdir())
    train = sorted(p.name for p in (data_dir / "photos" / "train").iterdir())
    assert val == ["camera.png", "chelsea.png", "coffee.png"] and not set(val) & set(train)


def test_reconstruct_with_a_checkpoint_keeps_size_and_mode(recon_run, tmp_path):
    from skimage import data

    gray = tmp_path / "camera.png"
    Image.fromarray(data.camera()[:101, :77]).save(gray)
    out = tmp_path / "rec.png"
    report = json.loads(invoke("reconstruct", str(gray), "--checkpoint", str(recon_run / "best.safetensors"),
                               "--out", str(out), "--json").strip().splitlines()[-1])  # fmt: skip
    written = Image.open(out)
    assert written.size == (77, 101) and written.mode == "L"
    original, result = np.asarray(Image.open(gray)), np.asarray(written)
    assert report["psnr"] == pytest.approx(peak_signal_noise_ratio(original, result, data_range=255), abs=1e-6)
    expected_ssim = structural_similarity(original / 255.0, result / 255.0, data_range=1.0, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False, win_size=11)  # fmt: skip
    assert report["ssim"] == pytest.approx(expected_ssim, abs=1e-9)


def test_reconstruct_without_checkpoint_is_exact(tmp_path):
    from skimage import data

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()[:333, :317]).save(photo, quality=92)
    report = json.loads(invoke("reconstruct", str(photo), "--json").strip().splitlines()[-1])
    assert report["exact"] or report["psnr"] >= 100
    assert Image.open(report["output"]).size == (317, 333)


def test_reconstruct_rejects_a_segmentation_checkpoint(tmp_path):
    seg = tmp_path / "seg"
    invoke("train", "--out", str(seg), "--epochs", "1", *TINY)
    result = runner.invoke(app, ["reconstruct", str(Path(__file__)), "--checkpoint", str(seg / "best.safetensors")])
    assert result.exit_code != 0 and "segmentation checkpoint" in result.output


@pytest.mark.parametrize("bad", ["text.png", "empty.png", "tiny.png", "missing.png"])
def test_reconstruct_bad_input_is_one_line_and_writes_nothing(tmp_path, bad):
    path = tmp_path / bad
    if bad == "text.png":
        path.write_text("hello")
    elif bad == "empty.png":
        path.write_bytes(b"")
    elif bad == "tiny.png":
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(tmp_path / "o.png")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_filters_prints_terms_and_writes_a_plot(recon_run, tmp_path):
    output = invoke("filters", str(recon_run / "best.safetensors"), "--out", str(tmp_path / "f.png"))
    assert "PR error" in output or "pr" in output.lower()
    assert Image.open(tmp_path / "f.png").size[0] > 100


def test_sweep_records_round_trip_psnr_for_every_weight_and_constraint(tmp_path):
    out = tmp_path / "sweep"
    invoke("sweep", "--task", "seg", "--wavelet-weights", "0,10", "--constraint", "paper", "--constraint",
           "orthogonal", "--epochs", "1", "--out", str(out), *TINY)  # fmt: skip
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert {(r["constraint"], float(r["wavelet_weight"])) for r in rows} == {
        ("paper", 0.0),
        ("paper", 10.0),
        ("orthogonal", 0.0),
        ("orthogonal", 10.0),
    }
    for r in rows:
        assert float(r["roundtrip_psnr"]) > 0 and float(r["pr_error"]) >= 0
    assert (out / "sweep.png").stat().st_size > 1000


def test_ablation_table3_runs_each_setting(tmp_path):
    invoke("ablate", "table3", "--epochs", "1", "--out", str(tmp_path / "abl"), *TINY)
    rows = list(csv.DictReader((tmp_path / "abl" / "table3" / "table3.csv").open()))
    assert [r["setting"] for r in rows] == ["LDW + energy attention", "LDW, no attention", "max pooling (no LDW)"]


def test_ablation_table6_pretrain_and_wavelet_loss(tmp_path):
    invoke("ablate", "table6", "--epochs", "1", "--out", str(tmp_path / "abl"), *TINY)
    rows = list(csv.DictReader((tmp_path / "abl" / "table6" / "table6.csv").open()))
    assert len(rows) == 4
    weights = {r["setting"]: float(r["wavelet_weight"]) for r in rows}
    assert weights["pretrain + L_wavelet"] == 1.0 and weights["no pretrain, no L_wavelet"] == 0.0
    pretrained = next(r for r in rows if r["setting"] == "pretrain, no L_wavelet")
    noise = next(r for r in rows if r["setting"] == "no pretrain, no L_wavelet")
    assert float(pretrained["pr_error"]) < float(noise["pr_error"])  # constraint-satisfying start vs plain noise


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--wavelet-weights", "a,b"], "--wavelet-weights expects comma-separated numbers"),
        (["sweep", "--wavelet-weights", "-1"], "non-negative"),
        (["ablate", "table9"], "unknown ablation table 'table9'; choose table3, table6"),
    ],
)
def test_sweep_and_ablate_bad_options_are_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output and len(result.output.strip().splitlines()) == 1
