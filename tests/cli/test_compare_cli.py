"""``ldwseg compare``: the JSON summary, and scores equal to separate ``ldwseg train`` runs."""

import csv
import json

import pytest
from typer.testing import CliRunner

from ldwseg.cli import app, main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
TRAIN = ["--epochs", "1", "--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
         "--set", "train.max_steps_per_epoch=2"]  # fmt: skip
VARIANTS = {"max": ["model.down=maxpool", "model.up=deconv"], "ldw": ["model.down=ldw"]}


def _variant_args() -> list[str]:
    return [a for name, sets in VARIANTS.items() for a in ("--variant", f"{name}: {' '.join(sets)}")]


def test_compare_json_and_separate_trainings(tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *_variant_args(), "--seeds", "0,1", *TRAIN, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["metric"] == "miou" and summary["seeds"] == [0, 1]
    assert [v["name"] for v in summary["variants"]] == ["max", "ldw"]
    fields = {"name", "params", "flops", "step_ms", "peak_mem_mb", "scores", "best_scores", "mean", "std",
              "diff_mean", "diff_std", "wins", "t", "per_class"}  # fmt: skip
    assert all(set(v) == fields for v in summary["variants"])

    for variant in summary["variants"]:
        for seed, score in zip(summary["seeds"], variant["scores"]):
            run = tmp_path / f"{variant['name']}{seed}"
            sets = [a for s in VARIANTS[variant["name"]] for a in ("--set", s)]
            trained = runner.invoke(app, ["train", *TRAIN, *sets, "--seed", str(seed), "--out", str(run)])
            assert trained.exit_code == 0, trained.output
            with (run / "metrics.csv").open(newline="") as f:
                last = list(csv.DictReader(f))[-1]
            assert float(last["val_miou"]) == score

    again = runner.invoke(app, ["compare", *_variant_args(), "--seeds", "0,1", *TRAIN, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "finished earlier" in again.output or "| ldw |" in again.output
    assert json.loads((out / "summary.json").read_text()) == summary


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant", "ldw: model.down=ldw", "--out", "x", "--resume"], "--resume is set by compare itself"),
        (["--variant", "ldw: model.down=ldw", "--seed", "3"], "--seed is set by compare itself"),
        (["--variant", "ldw: model.down=ldw", "--seeds", "a,b"], "--seeds expects comma-separated integers"),
        (["--variant", "nope"], "must look like 'NAME: section.field=value"),
        (["--variant", "x: model.down=nothing"], "variant 'x'"),
        (["--variant", "x: model.down=ldw", "--epochs", "zero"], "invalid value for '--epochs'"),
    ],
)
def test_compare_bad_arguments(tmp_path, args, message, capsys):
    code = main(["compare", *args])  # the console script: every refusal is one line
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "x").exists()


RECON_VARIANTS = {
    "max": "model.down=maxpool model.up=deconv",  # skip-free: nothing bypasses the bottleneck
    "ldw": "model.down=ldw-ll model.up=ldw",
    "max-detail": "model.down=maxpool-detail model.up=unpool-detail",  # bypass: residuals to the window maxima
    "ldw-detail": "model.down=ldw-ll model.up=ldw-detail",  # bypass: the LH, HL, HH bands
}


def test_recon_compare_of_the_skip_free_and_bypass_pairs_gives_psnr_per_seed(tmp_path):
    out = tmp_path / "recon"
    variants = [a for name, sets in RECON_VARIANTS.items() for a in ("--variant", f"{name}: {sets}")]
    result = runner.invoke(
        app, ["compare", "--task", "recon", *variants, "--seeds", "0,1", *TRAIN, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["metric"] == "psnr" and [v["name"] for v in summary["variants"]] == list(RECON_VARIANTS)
    for variant in summary["variants"]:
        for seed, score in zip(summary["seeds"], variant["scores"]):
            with (out / variant["name"] / f"seed{seed}" / "metrics.csv").open(newline="") as f:
                assert float(list(csv.DictReader(f))[-1]["val_psnr"]) == score > 0
    params = {v["name"]: v["params"] for v in summary["variants"]}
    for ldw, twin in (("ldw", "max"), ("ldw-detail", "max-detail")):
        assert abs(params[ldw] / params[twin] - 1) < 0.02, params
