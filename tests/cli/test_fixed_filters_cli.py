"""``model.learn_filters=false`` through the command line: the checkpoint's filters are the initial wavelet."""

import json

import pytest
import pywt
import torch
from typer.testing import CliRunner

from ldwseg.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
TINY = ["--epochs", "1", "--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
        "--set", "train.max_steps_per_epoch=3", "--set", "model.wavelet=db2"]  # fmt: skip


def _pools(checkpoint) -> list[dict]:
    result = runner.invoke(app, ["filters", str(checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["pools"]


@pytest.mark.parametrize(
    "down, up, constraint",
    [("ldw", "ldw", "orthogonal"), ("ldw-ll", "ldw-detail", "orthogonal"), ("ldw-grouped", "ldw", "lattice")],
)
def test_fixed_filters_stay_the_initial_wavelet(tmp_path, down, up, constraint):
    fixed, learned = tmp_path / "fixed", tmp_path / "learned"
    for out, learn in ((fixed, "false"), (learned, "true")):
        args = [
            "train", *TINY, "--down", down, "--up", up, "--constraint", constraint,
            "--set", f"model.learn_filters={learn}", "--out", str(out),
        ]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    db2 = pywt.Wavelet("db2")
    for pool in _pools(fixed / "last.safetensors"):
        if constraint == "lattice":  # the filters are rebuilt from fixed angles: db2 up to float rounding
            torch.testing.assert_close(torch.tensor(pool["low"]), torch.tensor(pool["initial_low"]))
            torch.testing.assert_close(torch.tensor(pool["high"]), torch.tensor(pool["initial_high"]))
        else:
            assert pool["low"] == pool["initial_low"] and pool["high"] == pool["initial_high"]
        torch.testing.assert_close(torch.tensor(pool["low"]), torch.tensor(db2.rec_lo, dtype=torch.float32))
    moved = [p for p in _pools(learned / "last.safetensors") if p["low"] != p["initial_low"]]
    assert moved, "learned filters should move in 3 Adam steps"
