import argparse
import os
import pickle
import random
import struct

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from ldwseg import LDWPool2d, LDWUnpool2d
from ldwseg.errors import CheckpointError
from ldwseg.io.training_state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from ldwseg.io.weights import load_weights, read_metadata, save_weights


class Tiny(nn.Module):
    """Conv, BatchNorm (buffers), an LDW pool and the unpool tied to it, a head."""

    def __init__(self, width: int = 4, *, extra: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.pool = LDWPool2d(width, wavelet="db2", constraint="orthogonal")
        self.unpool = LDWUnpool2d(self.pool)
        self.head = nn.Conv2d(width, 2, 1)
        self.extra = nn.Linear(2, 2) if extra else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return self.head(self.unpool(self.pool(y), output_size=y.shape[-2:]))


def perturbed(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.add_(torch.rand_like(t))  # positive: keeps BatchNorm's running_var valid
    return model


def umask_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_weights_round_trip_keeps_values_and_tie(tmp_path):
    source = perturbed(Tiny())
    path = tmp_path / "model.safetensors"
    save_weights(path, source, metadata={})
    with safetensors.safe_open(str(path), framework="pt") as f:
        stored = set(f.keys())
    assert "pool.low" in stored and "unpool.pool.low" not in stored  # the tied tensor is stored once
    assert path.stat().st_mode & 0o777 == umask_mode()  # not safetensors' private 0600

    target = Tiny()
    assert load_weights(path, target) == {}  # every tensor fitted (else it raises); no metadata
    for name, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], value, rtol=0, atol=0, msg=name)
    x = torch.randn(2, 3, 10, 12)
    source.eval(), target.eval()
    torch.testing.assert_close(target(x), source(x))

    # still tied: changing the pool's filter changes what the unpool uses
    assert target.unpool.pool.low is target.pool.low
    with torch.no_grad():
        target.pool.low.mul_(2)
    torch.testing.assert_close(target.state_dict()["unpool.pool.low"], 2 * source.pool.low.detach())


def test_metadata_round_trip_without_loading_tensors(tmp_path):
    path = tmp_path / "model.safetensors"
    metadata = {"config": {"wavelet": "db2", "channels": [16, 32]}, "classes": ["bg", "cat"], "miou": 0.5, "x": None}
    save_weights(path, Tiny(), metadata=metadata)
    assert read_metadata(path) == metadata
    assert load_weights(path, Tiny()) == metadata


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        save_weights(tmp_path / "m.safetensors", Tiny(), metadata={"path": tmp_path})
    assert not (tmp_path / "m.safetensors").exists()


def test_foreign_safetensors_file_has_empty_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path))
    assert read_metadata(path) == {}


def test_failed_save_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_weights(path, Tiny(), metadata={"version": 1})
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, Tiny(), metadata={"version": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert read_metadata(path) == {"version": 1}


def test_failed_training_state_save_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_training_state(path, {"epoch": 1})

    def broken_save(obj, f):
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_training_state(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["state.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_never_unpickled(tmp_path):
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(Payload(str(control)))).close()
    assert control.exists()  # the payload is live: plain unpickling runs it

    marker = tmp_path / "marker"
    weights, state = tmp_path / "model.safetensors", tmp_path / "state.pt"
    weights.write_bytes(pickle.dumps({"state_dict": Payload(str(marker))}))
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint: it is a Python pickle.*never unpickles"):
        load_weights(weights, Tiny())
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        read_metadata(weights)
    state.write_bytes(pickle.dumps({"optimizer": Payload(str(marker))}))
    with pytest.raises(CheckpointError, match="refuses to unpickle arbitrary objects"):
        load_training_state(state)
    assert not marker.exists()


def test_malicious_torch_archive_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "state.pt"
    torch.save({"epoch": 3, "optimizer": Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refuses to unpickle arbitrary objects"):
        load_training_state(path)
    with pytest.raises(CheckpointError, match=r"it is a torch\.save \(pickle\) archive"):
        load_weights(path, Tiny())
    assert not marker.exists()


def test_shape_mismatch_names_first_key(tmp_path):
    path = tmp_path / "model.safetensors"
    save_weights(path, Tiny(width=4), metadata={})
    with pytest.raises(
        CheckpointError,
        match=r"'conv\.weight' has shape \(4, 3, 3, 3\) in the checkpoint but \(6, 3, 3, 3\) in the model",
    ):
        load_weights(path, Tiny(width=6))


def test_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "model.safetensors"
    save_weights(path, Tiny(extra=True), metadata={})
    with pytest.raises(CheckpointError, match=r"checkpoint's 'extra\.bias', 'extra\.weight' do not exist"):
        load_weights(path, Tiny())

    save_weights(path, Tiny(), metadata={})
    with pytest.raises(CheckpointError, match=r"model's 'extra\.weight', 'extra\.bias' are missing"):
        load_weights(path, Tiny(extra=True))


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors", Tiny())
    with pytest.raises(CheckpointError, match="is not a file"):
        read_metadata(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_training_state(tmp_path / "nope.pt")
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"not a safetensors checkpoint: it is of an unknown format"):
        load_weights(text, Tiny())
    with pytest.raises(CheckpointError, match="not a readable training state"):
        load_training_state(text)

    truncated = tmp_path / "cut.safetensors"
    save_weights(truncated, Tiny(), metadata={})
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged safetensors file"):
        load_weights(truncated, Tiny())

    weights = tmp_path / "model.safetensors"
    save_weights(weights, Tiny(), metadata={})
    with pytest.raises(CheckpointError, match="holds model weights .* use load_weights|read it with load_weights"):
        load_training_state(weights)


def test_bad_metadata_json(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(path), metadata={"ldwseg": "{not json"})
    with pytest.raises(CheckpointError, match="metadata of .* is not valid JSON"):
        read_metadata(path)
    # a safetensors header is recognised by its length prefix and its opening brace
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] < path.stat().st_size


def adam_setup(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = Tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler


def train_step(model, optimizer, scheduler, x):
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()
    scheduler.step()


def test_optimizer_and_scheduler_round_trip(tmp_path):
    x = torch.randn(2, 3, 8, 8)
    model, optimizer, scheduler = adam_setup(0)
    for _ in range(2):
        train_step(model, optimizer, scheduler, x)
    save_weights(tmp_path / "model.safetensors", model, metadata={})
    save_training_state(
        tmp_path / "state.pt",
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": 2},
    )

    resumed, resumed_optimizer, resumed_scheduler = adam_setup(1)
    load_weights(tmp_path / "model.safetensors", resumed)
    state = load_training_state(tmp_path / "state.pt")
    resumed_optimizer.load_state_dict(state["optimizer"])
    resumed_scheduler.load_state_dict(state["scheduler"])
    assert state["epoch"] == 2

    train_step(model, optimizer, scheduler, x)
    train_step(resumed, resumed_optimizer, resumed_scheduler, x)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, msg=name)
    assert resumed_scheduler.get_last_lr() == scheduler.get_last_lr()


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(), np.random.randn()


def test_rng_round_trip_restores_the_next_numbers(tmp_path):
    np.random.randn()  # leave a cached Gaussian in numpy's state
    path = tmp_path / "state.pt"
    save_training_state(path, {"rng": capture_rng_state()})
    expected = draws()
    restore_rng_state(load_training_state(path)["rng"])
    assert draws() == expected


def test_numpy_values_are_stored_as_plain_data(tmp_path):
    path = tmp_path / "state.pt"
    save_training_state(path, {"best": np.float64(0.5), "counts": np.arange(3), "pair": (np.int64(1), "a")})
    state = load_training_state(path)
    assert state["best"] == 0.5 and type(state["best"]) is float
    torch.testing.assert_close(state["counts"], torch.arange(3))
    assert state["pair"] == (1, "a")


def test_objects_that_could_not_be_loaded_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"state\['args'\] is a Namespace.*vars\(args\)"):
        save_training_state(tmp_path / "state.pt", {"epoch": 1, "args": argparse.Namespace(lr=0.1)})
    assert not (tmp_path / "state.pt").exists()
