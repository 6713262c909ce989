"""Untrusted checkpoints: no loading path unpickles code, and what does not fit is named.

A malicious pickle (its ``__reduce__`` creates a marker file) is saved under every name
a checkpoint goes by. Every command and API that reads checkpoints must refuse it with
one clear line, and the marker must never appear. The low-level readers of
:mod:`ldwseg.io.weights` and :mod:`ldwseg.io.training_state` are tested on such files in ``tests/io/test_weights.py``; here are the
commands, the run-level API and checkpoints whose metadata was edited.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image
from typer.testing import CliRunner

from ldwseg.cli import main
from ldwseg.engine.checkpoints import load_run_model
from ldwseg.errors import CheckpointError, ConfigError
from ldwseg.io.training_state import load_training_state
from ldwseg.io.weights import load_weights, read_metadata

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
TINY = ["--epochs", "1", "--device", "cpu", "--set", "model.base_width=4", "--set", "model.depth=2", "--set",
        "data.crop_size=32", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=1"]  # fmt: skip
NAMES = ("best.safetensors", "last.safetensors", "last.state.pt", "model.pt", "weights.pth")
REFUSED = "unpickle"  # every refusal says that ldwseg never unpickles (arbitrary objects)


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def cli(*args: object) -> tuple[int, str]:
    """Exit status and stderr of ``ldwseg ARGS`` through the console script's main()."""
    with runner.isolation() as (_, err, _):
        code = main([str(a) for a in args])
        sys.stderr.flush()
        return code, err.getvalue().decode()


def one_error(code: int, err: str, *words: str) -> str:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, lines
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir) -> Path:
    """A real (tiny) training run: best/last.safetensors and last.state.pt."""
    out = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LDWSEG_DATA", str(data_dir))
        code, err = cli("train", *TINY, "--out", out)
    assert code == 0, err
    return out


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil(tmp_path, marker) -> dict[str, Path]:
    """The payload under every checkpoint name: torch.save archives and plain pickles."""
    folder = tmp_path / "evil"
    folder.mkdir()
    payload = {"state_dict": {"w": torch.zeros(1)}, "optimizer": Payload(marker), "epoch": 0}
    files = {}
    for name in NAMES:
        path = folder / name
        if name.endswith(".pt") or name == "best.safetensors":
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload))
        files[name] = path
    return files


def test_the_payload_is_live(evil, marker):
    """Unpickling the files as torch.load would without weights_only runs the payload."""
    torch.load(evil["last.state.pt"], weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(evil["weights.pth"].read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("name", NAMES)
def test_commands_refuse_a_pickled_checkpoint(evil, marker, name, tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    path, out = evil[name], tmp_path / "out"
    commands = [
        ["evaluate", path, "--device", "cpu"],
        ["predict", path, image, "--out", out, "--device", "cpu"],
        ["reconstruct", image, "--checkpoint", path, "--out", out / "r.png", "--device", "cpu"],
        ["filters", path, "--out", out / "f.png"],
    ]
    for args in commands:
        one_error(*cli(*args), path.name, "not a safetensors checkpoint", REFUSED)
    assert not marker.exists()
    assert not out.exists()


@pytest.mark.parametrize("name", NAMES)
def test_the_api_refuses_a_pickled_checkpoint(evil, marker, name):
    from ldwseg.seg.evaluate import evaluate_checkpoint

    path = evil[name]
    for load in (
        load_run_model,
        lambda p: load_run_model(p, task="seg"),
        lambda p: evaluate_checkpoint(p, device="cpu"),
        read_metadata,
        lambda p: load_weights(p, torch.nn.Linear(1, 1)),
        load_training_state,
    ):
        with pytest.raises(CheckpointError, match=REFUSED):
            load(path)
    assert not marker.exists()


def _resume(out: Path) -> tuple[int, str]:
    return cli("train", *TINY, "--epochs", "2", "--resume", "--out", out)


@pytest.mark.parametrize("name", ["last.state.pt", "weights.pth"], ids=["torch.save", "pickle"])
def test_resume_refuses_a_pickled_training_state(run_dir, evil, marker, name, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    shutil.copy(evil[name], out / "last.state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_error(*_resume(out), "last.state.pt", REFUSED)
    assert "resume only from training states saved by ldwseg" in line
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing was written


def test_resume_refuses_pickled_weights(run_dir, evil, marker, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    shutil.copy(evil["last.safetensors"], out / "last.safetensors")
    one_error(*_resume(out), "last.safetensors", "not a safetensors checkpoint", REFUSED)
    assert not marker.exists()


def test_a_valid_run_still_resumes(run_dir, tmp_path):
    """The control: the same run, unmodified, resumes."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    code, err = _resume(out)
    assert code == 0, err
    assert read_metadata(out / "last.safetensors")["epoch"] == 1


def rewrite_metadata(src: Path, dst: Path, field: str, value) -> Path:
    """Copy a checkpoint, tensors unchanged, with metadata ``field`` (dotted) set to ``value``, as anyone could."""
    meta = read_metadata(src)
    *keys, last = field.split(".")
    target = meta
    for key in keys:
        target = target[key]
    target[last] = value
    tensors = safetensors.torch.load_file(str(src))
    safetensors.torch.save_file(tensors, str(dst), metadata={"ldwseg": json.dumps(meta), "format": "pt"})
    return dst


@pytest.mark.parametrize(
    "field, value, first_key",
    [
        ("config.model.base_width", 8, "'stem.0.weight' has shape (4, 3, 3, 3) in the checkpoint but (8, 3, 3, 3)"),
        ("dataset.num_classes", 7, "'head.weight' has shape (6, 4, 1, 1) in the checkpoint but (7, 4, 1, 1)"),
        ("config.model.depth", 3, "the model's 'downs.2."),
    ],
)
def test_weights_that_do_not_fit_the_stored_config_name_the_first_key(run_dir, field, value, first_key, tmp_path):
    path = rewrite_metadata(run_dir / "best.safetensors", tmp_path / "edited.safetensors", field, value)
    line = one_error(*cli("evaluate", path, "--device", "cpu"), "edited.safetensors", "does not fit UNet", first_key)
    assert "configuration the checkpoint was trained with" in line
    with pytest.raises(CheckpointError, match="does not fit UNet"):
        load_run_model(path)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("config.model.depth", 40, ["model.depth=40", "parameters"]),
        ("config.model.base_width", 10**9, ["model.base_width=1000000000", "parameters"]),
        ("config.model.wavelet", "nosuch", ["model.wavelet='nosuch'"]),
        ("config.model.depth", "4; rm -rf /", ["model.depth", "int"]),
        ("config.train.epochs", 1.5, ["train.epochs", "int"]),
    ],
)
def test_a_stored_config_is_validated_before_a_model_is_built(run_dir, field, value, words, tmp_path):
    """Edited metadata cannot make ldwseg build a model that exhausts memory, or use unchecked values."""
    path = rewrite_metadata(run_dir / "best.safetensors", tmp_path / "edited.safetensors", field, value)
    one_error(*cli("filters", path, "--out", tmp_path / "f.png"), "edited.safetensors (stored config)", *words)
    with pytest.raises(ConfigError, match="stored config"):
        load_run_model(path)
    assert not (tmp_path / "f.png").exists()
