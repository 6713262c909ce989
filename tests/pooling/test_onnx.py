"""ONNX export of LDW pooling, run in onnxruntime and compared with eager PyTorch.

Both exporters are covered: ``dynamo=False`` records the model with ``torch.jit.trace``,
``dynamo=True`` with ``torch.export``. Models are exported at one size with batch, height
and width declared dynamic, then run at other sizes, odd and even.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from ldwseg.pooling import EnergyAttention, LDWPool2d, LDWUnpool2d

EXPORTERS = ["torchscript", "dynamo"]
EXAMPLE_SIZE = (16, 12)
RUN_SHAPES = [(2, 16, 12), (3, 33, 17), (1, 20, 31), (2, 333, 517), (1, 1, 3)]  # (N, H, W)
TOL = {"atol": 1e-5, "rtol": 1e-5}


class RoundTrip(nn.Module):
    """Pool, energy attention on the subbands, unpool to the input's size."""

    def __init__(self, channels: int, wavelet: str) -> None:
        super().__init__()
        self.pool = LDWPool2d(channels, wavelet=wavelet, constraint="orthogonal")
        self.unpool = LDWUnpool2d(self.pool)
        self.attention = EnergyAttention(4 * channels, reduction=2)
        with torch.no_grad():  # non-trivial statistics so normalisation and gates matter
            self.attention.norm.running_mean.normal_()
            self.attention.norm.running_var.uniform_(0.5, 2.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.unpool(self.attention(self.pool(x)), output_size=x.shape[-2:])


def _pool(channels: int, wavelet: str) -> nn.Module:
    return nn.Sequential(LDWPool2d(channels, wavelet=wavelet))


def _export(model: nn.Module, example: Tensor, exporter: str, path: Path, *, dynamic: bool):
    """Export ``model`` at ``example`` to ``path`` and open it in onnxruntime (CPU).

    Fails when the export warns that the trace might not generalise (a TracerWarning)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    kwargs: dict = {"input_names": ["x"], "output_names": ["y"]}
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
        any_size = getattr(torch.export.Dim, "DYNAMIC", None)
        if any_size is None:
            pytest.skip("torch.export.Dim.DYNAMIC needs a newer torch")
        kwargs.update(dynamo=True, verbose=False)
        if dynamic:
            kwargs["dynamic_shapes"] = ({0: any_size, 2: any_size, 3: any_size},)
    else:
        kwargs.update(dynamo=False)
        if dynamic:
            kwargs["dynamic_axes"] = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "out_h", 3: "out_w"}}
    model.eval()
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(model, (example,), str(path), **kwargs)
    tracer_warnings = [str(w.message) for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert not tracer_warnings, tracer_warnings
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"], "the graph lost its input (output folded to a constant)"
    return session


def _run(session, x: Tensor) -> Tensor:
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("wavelet", ["haar", "db2"])  # K = 2 and K = 4
@pytest.mark.parametrize("build", [_pool, RoundTrip], ids=["pool", "pool_attention_unpool"])
def test_dynamic_export_is_exact_at_every_size(tmp_path, exporter, wavelet, build):
    channels = 3
    model = build(channels, wavelet).eval()
    session = _export(model, torch.randn(2, channels, *EXAMPLE_SIZE), exporter, tmp_path / "m.onnx", dynamic=True)
    for n, h, w in RUN_SHAPES:
        x = torch.randn(n, channels, h, w)
        with torch.no_grad():
            expected = model(x)
        assert_close(_run(session, x), expected, **TOL, msg=lambda m, x=x: f"input {tuple(x.shape)}: {m}")


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(
    "wavelet, shape", [("haar", (1, 64, 48, 64)), ("db2", (2, 8, 33, 17)), ("db2", (3, 5, 20, 31))]
)
def test_static_export_is_exact_and_rejects_other_sizes(tmp_path, exporter, wavelet, shape):
    """Issue 16's cases; a graph exported without dynamic sizes refuses others, it never guesses."""
    ort = pytest.importorskip("onnxruntime")
    model = _pool(shape[1], wavelet).eval()
    x = torch.randn(shape)
    session = _export(model, x, exporter, tmp_path / "m.onnx", dynamic=False)
    with torch.no_grad():
        assert_close(_run(session, x), model(x), **TOL)
    other = torch.randn(shape[0], shape[1], shape[2] + 1, shape[3])
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="invalid dimensions"):
        _run(session, other)


@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4"])
def test_traced_model_matches_eager_at_other_sizes_with_gradients(wavelet):
    """``torch.jit.trace`` (the TorchScript exporter's front end) at one size, run at others;
    db4 (K = 8) on maps smaller than its periodic margin."""

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = LDWPool2d(2, wavelet=wavelet, constraint="orthogonal")
            self.unpool = LDWUnpool2d(self.pool)

        def forward(self, x: Tensor) -> Tensor:
            return self.unpool(self.pool(x) * torch.linspace(0.5, 2.0, 8)[:, None, None], output_size=x.shape[-2:])

    model = Pair().double()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.trace is deprecated
        traced = torch.jit.trace(model, torch.randn(2, 2, 16, 12, dtype=torch.float64))
    for shape in [(2, 2, 16, 12), (3, 2, 21, 15), (1, 2, 3, 2), (1, 2, 1, 1), (2, 2, 5, 8)]:
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        eager, got = model(x), traced(x)
        assert_close(got, eager)
        g_eager = torch.autograd.grad(eager.square().sum(), [x, model.pool.low])
        g_traced = torch.autograd.grad(got.square().sum(), [x, model.pool.low])
        assert_close(g_traced[0], g_eager[0])
        assert_close(g_traced[1], g_eager[1])
