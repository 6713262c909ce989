"""``export_onnx`` / ``ldwseg export``: a checkpoint's whole UNet in onnxruntime, at other sizes.

Checkpoints are tiny untrained UNets written as training writes them, with random BatchNorm
statistics so that normalisation and the energy attention's gates matter.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import Tensor, nn
from torch.testing import assert_close
from typer.testing import CliRunner

from ldwseg.cli import main
from ldwseg.engine.checkpoints import load_run_model, save_run_checkpoint
from ldwseg.errors import CheckpointError, ConfigError
from ldwseg.inference import export as export_module
from ldwseg.inference.export import ExportError, export_onnx
from ldwseg.models import build_unet
from ldwseg.tasks import load_config

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TINY = {"model.base_width": 4, "model.depth": 2, "model.attention": True, "data.crop_size": 32}
CHECK = (37, 45)  # odd sides: every level pads and crops
RUN_SHAPES = [(3, 3, 33, 17), (1, 3, 20, 31), (1, 3, 5, 3)]  # (N, C, H, W), none of them exported
SEG_RECORD = {"name": "synthetic", "num_classes": 3, "class_names": ["a", "b", "c"],
              "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "ignore_index": 255, "out_channels": 3}  # fmt: skip
RECON_RECORD = {"name": "photos", "out_channels": 3}


def make_checkpoint(path: Path, task: str, **overrides) -> Path:
    cfg = load_config(None, {"train.task": task, **TINY, **overrides})
    record = SEG_RECORD if task == "seg" else RECON_RECORD
    torch.manual_seed(0)
    model = build_unet(cfg.model, 3, record["out_channels"])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    save_run_checkpoint(path, model, cfg, record, epoch=0, metrics={})
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export_ckpts")
    return {
        "seg": make_checkpoint(d / "seg.safetensors", "seg", **{"model.wavelet": "db2"}),  # K = 4
        "seg_haar": make_checkpoint(
            d / "seg_haar.safetensors",
            "seg",
            **{"model.down": "ldw", "model.wavelet": "haar", "model.constraint": "orthogonal", "model.attention": True},
        ),  # fmt: skip
        "recon": make_checkpoint(d / "recon.safetensors", "recon", **{"model.skip": False}),
    }


def run_onnx(path: Path, x: Tensor) -> Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def assert_matches_pytorch(checkpoint: Path, onnx_file: Path) -> None:
    model, _, _ = load_run_model(checkpoint)
    for shape in RUN_SHAPES:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        assert_close(
            run_onnx(onnx_file, x), expected, atol=1e-5, rtol=1e-4, msg=lambda m, shape=shape: f"input {shape}: {m}"
        )


def test_seg_checkpoint_with_attention_is_exact_at_other_sizes(ckpts, tmp_path):
    out = tmp_path / "seg.onnx"
    result = export_onnx(ckpts["seg"], out, check_size=CHECK)
    assert out.is_file() and result["bytes"] == out.stat().st_size
    assert result["exporter"] == "torchscript" and result["task"] == "seg" and result["output_name"] == "logits"
    assert result["export_size"] == [32, 32]  # the run's crop size
    assert [c["shape"] for c in result["checks"]] == [[2, 3, 32, 32], [1, 3, *CHECK]]
    assert result["max_abs_error"] <= result["limit"] == pytest.approx(1e-4 * result["output_scale"])
    assert_matches_pytorch(ckpts["seg"], out)
    import onnx

    graph = onnx.load(str(out)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [o.name for o in graph.output] == ["logits"]


def test_recon_checkpoint_and_options(ckpts, tmp_path):
    out = tmp_path / "recon.onnx"
    result = export_onnx(ckpts["recon"], out, opset=18, size=(24, 40), check_size=CHECK)
    assert result["task"] == "recon" and result["output_name"] == "reconstruction"
    assert result["opset"] == 18 and result["export_size"] == [24, 40]
    assert_matches_pytorch(ckpts["recon"], out)


@pytest.mark.slow
def test_dynamo_exporter_is_exact_with_haar_pools(ckpts, tmp_path):
    out = tmp_path / "dynamo.onnx"
    result = export_onnx(ckpts["seg_haar"], out, exporter="dynamo", check_size=CHECK)
    assert result["exporter"] == "dynamo"
    assert_matches_pytorch(ckpts["seg_haar"], out)
    assert not list(tmp_path.glob("*.data"))  # the weights are inside the file


@pytest.mark.parametrize("example", [(2, 3, 8, 6), (2, 3, 7, 5)], ids=["even", "odd"])
def test_pad_to_even_follows_the_runtime_parity_when_traced(example):
    """The spd splits pad with it: a trace at one parity must pad the other one too."""
    from ldwseg.pooling.functional import pad_to_even

    class Pad(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return pad_to_even(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # a frozen size
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.trace is deprecated
        traced = torch.jit.trace(Pad(), torch.randn(example))
    for shape in [(1, 2, 8, 6), (1, 2, 7, 5), (1, 2, 1, 4), (3, 1, 4, 9)]:
        x = torch.randn(shape)
        assert_close(traced(x), pad_to_even(x))


class FrozenWidth(nn.Module):
    """A model whose trace freezes the example's width: the tracer records ``int(W)`` as a constant."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor) -> Tensor:
        return self.unet(x) + float(x.shape[-1])


class Unsupported(nn.Module):
    """A model with an op that the TorchScript exporter cannot convert (it prints its graph then)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor) -> Tensor:
        return torch.cummax(self.unet(x), dim=-1).values


def _loaded_as(wrapper: type[nn.Module], monkeypatch) -> None:
    """Make the export load every checkpoint's UNet wrapped in ``wrapper``."""

    def load(path, device="cpu", *, task=None):
        model, meta, cfg = load_run_model(path, device, task=task)
        return wrapper(model).eval(), meta, cfg

    monkeypatch.setattr(export_module, "load_run_model", load)


@pytest.fixture
def frozen_model(ckpts, monkeypatch) -> Path:
    """``ckpts["seg"]``, loaded by the export as a :class:`FrozenWidth` model."""
    _loaded_as(FrozenWidth, monkeypatch)
    return ckpts["seg"]


def test_an_inexact_export_is_refused_and_nothing_written(frozen_model, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    with pytest.raises(ExportError, match=r"not exact: max abs error .* at input shape \(1, 3, 37, 45\).*nothing was"
                       r" written \(the trace froze a value at test_export.py:\d+: .*\) *; try --exporter dynamo"):  # fmt: skip
        export_onnx(frozen_model, out, check_size=CHECK)
    assert out.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"exporter": "tracing"}, ConfigError, "unknown exporter 'tracing'; choose one of torchscript, dynamo"),
        ({"opset": 3}, ConfigError, "opset >= 7"),
        ({"size": (0, 32)}, ConfigError, r"--size must be two positive integers \(height width\), got \(0, 32\)"),
        ({"check_size": (33,)}, ConfigError, "--check-size must be two positive integers"),
    ],
)
def test_bad_options(ckpts, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        export_onnx(ckpts["seg"], tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_ldwseg_metadata_is_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no ldwseg metadata"):
        export_onnx(foreign, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------------------ the command

runner = CliRunner()


def cli(*args: object) -> tuple[int, str, str]:
    """``ldwseg ARGS`` through the console script's main(): exit code, stdout, stderr."""
    with runner.isolation() as (out, err, _):
        code = main([str(a) for a in args])
        sys.stdout.flush()
        sys.stderr.flush()
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_cli_writes_the_file_and_reports_the_error(ckpts, tmp_path):
    out = tmp_path / "seg.onnx"
    code, stdout, stderr = cli("export", ckpts["seg"], out, "--check-size", *CHECK)
    assert code == 0, stderr
    assert out.is_file()
    assert f"wrote {out} (torchscript exporter, opset " in stdout
    assert "max abs error" in stdout and "at (1, 3, 37, 45)" in stdout

    code, stdout, stderr = cli("export", ckpts["seg"], out, "--check-size", *CHECK, "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["output"] == str(out) and report["max_abs_error"] <= report["limit"]


def _one_error_line(code: int, stderr: str, *words: str) -> None:
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(w in lines[0] for w in words), lines[0]


def test_cli_refuses_an_inexact_export_in_one_line(frozen_model, tmp_path):
    code, _, stderr = cli("export", frozen_model, tmp_path / "m.onnx", "--check-size", *CHECK)
    _one_error_line(code, stderr, "is not exact", "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_an_exporter_failure_in_one_line_and_nothing_else(ckpts, tmp_path, monkeypatch, capfd):
    _loaded_as(Unsupported, monkeypatch)
    code, stdout, stderr = cli("export", ckpts["seg"], tmp_path / "m.onnx", "--check-size", *CHECK)
    _one_error_line(code, stderr, "torchscript export", "UnsupportedOperatorError", "aten::cummax", "--exporter dynamo")
    leaked = capfd.readouterr()  # the exporter's C++ log writes to the file descriptors themselves
    assert stdout == "" and "Torch IR graph" not in leaked.out + leaked.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing.safetensors", "m.onnx"], ["missing.safetensors"]),
        (["CKPT", "m.onnx", "--exporter", "jit"], ["unknown exporter 'jit'"]),
        (["CKPT", "m.onnx", "--size", "0", "8"], ["--size must be two positive integers"]),
        (["CKPT", "."], ["is a folder"]),
    ],
    ids=["missing checkpoint", "unknown exporter", "zero size", "out is a folder"],
)
def test_cli_bad_input_is_one_line(ckpts, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = cli("export", *[str(ckpts["seg"]) if a == "CKPT" else a for a in args])
    _one_error_line(code, stderr, *words)
    assert not (tmp_path / "m.onnx").exists()
