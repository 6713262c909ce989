"""Export a trained checkpoint's whole model to ONNX, checked with onnxruntime.

The model is recorded at one example size with batch, height and width declared dynamic,
then run by onnxruntime from the written file, at that size and at an odd one (333x517 by
default), and compared with PyTorch; a file whose largest error exceeds ``tolerance``
times the output scale (the largest ``|output|`` PyTorch gives on the check inputs) is not
written. LDW pooling records ops whose sizes stay symbolic (see "Export" in
:mod:`ldwseg.pooling.functional`), so a graph that passes is exact at every size.

Exporters (``exporter``):

* ``"torchscript"`` (default): ``torch.onnx.export(dynamo=False)``, which traces the model
  with ``torch.jit.trace``: 0.5 s for the default 4-level UNet of ``ldwseg train`` on a
  2-core CPU, exact for LDW pools of every filter length.
* ``"dynamo"``: ``torch.onnx.export(dynamo=True)``, which records it with ``torch.export``:
  about 30 s for that UNet, exact with ``K = 2`` pools (``haar``); with longer filters it
  fails on a UNet (it cannot prove a decoder map as large as its skip).

An smp arch (:class:`~ldwseg.models.smp.SMPSegmenter`) pads its input to the encoder's
output stride (where smp needs it) by amounts computed from the input's shape, and its
decoders interpolate by scale factors or to the skips' sizes, so its graph also keeps
height and width symbolic (checked with the torchscript exporter for every smp arch of
``model.arch``).

Blocks that test sizes as Python values come out of either capture fixed to the example's
sizes, or are refused by the exporter: the ``deconv`` and ``shuffle`` decoders
(``match_size`` skips its pad when the sizes agree) and the ``spd`` splits (their reshape
loses the channel count). The check then refuses the file, with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.checkpoints import load_run_model
from ..errors import ConfigError, LDWSegError
from ..io.atomic import atomic_write
from ..task_kinds import TASK_KINDS

__all__ = ["CHECK_SIZE", "EXPORTERS", "TOLERANCE", "ExportError", "export_onnx"]

EXPORTERS = ("torchscript", "dynamo")
CHECK_SIZE = (333, 517)
"""The odd ``(height, width)`` at which every export is also checked."""
TOLERANCE = 1e-4
"""The largest max-abs error accepted, as a fraction of the output scale."""
INPUT_NAME = "image"
OUTPUT_NAMES = {name: kind.output for name, kind in TASK_KINDS.items()}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXAMPLE_BATCH = 2  # torch.export (dynamo) can specialise a batch of 1 to stay 1
_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


class ExportError(LDWSegError):
    """The exporter failed on the model, or its file does not compute what the model computes."""


def _check_options(exporter: str | None, opset: int | None) -> str:
    """The exporter to use, after checking the options."""
    exporter = EXPORTERS[0] if exporter is None else exporter
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if opset is not None and opset < 7:
        raise ConfigError(f"--opset must be an ONNX opset >= 7 (17 or 18 are typical), got {opset}")
    return exporter


def _check_size(size: Sequence[int], option: str) -> tuple[int, int]:
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ConfigError(f"{option} must be two positive integers (height width), got {tuple(size)}")
    return int(size[0]), int(size[1])


def _onnx_runtime() -> Any:
    """onnxruntime (it checks the file), or an error that says how to install it."""
    try:
        import onnx  # noqa: F401 (both exporters need it)
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            f"exporting to ONNX needs the onnx and onnxruntime packages ({exc.name} is missing); "
            "pip install onnx onnxruntime onnxscript"
        ) from None
    return onnxruntime


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Hold back what the exporters log or print while they run (hundreds of lines: every graph
    rewrite, whole graphs with a warning or a failure); a failure comes back as one
    :class:`ExportError` instead.

    Python's streams are redirected, and so are the file descriptors 1 and 2: the TorchScript
    exporter's C++ log writes its graph there when it fails.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    with tempfile.TemporaryFile() as sink, contextlib.ExitStack() as restore:
        for fd, copy in zip((1, 2), saved):
            os.dup2(sink.fileno(), fd)
            restore.callback(os.close, copy)
            restore.callback(os.dup2, copy, fd)
        restore.enter_context(contextlib.redirect_stdout(io.StringIO()))
        restore.enter_context(contextlib.redirect_stderr(io.StringIO()))  # torch's log handlers write to sys.stderr
        yield


def _record(model: nn.Module, example: Tensor, path: Path, *, exporter: str, opset: int | None,
            output_name: str) -> list[str]:  # fmt: skip
    """Write ``model`` recorded at ``example`` to ``path``; returns where the tracer froze values, and why."""
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught, _quiet_exporters():
        warnings.simplefilter("always")
        if exporter == "dynamo":
            dynamic = torch.export.Dim.DYNAMIC
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, verbose=False, external_data=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[output_name],
                dynamic_shapes=({d: dynamic for d in _DYNAMIC_AXES},),
            )  # fmt: skip
        else:
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[output_name], dynamic_axes={INPUT_NAME: _DYNAMIC_AXES, output_name: _DYNAMIC_AXES},
            )  # fmt: skip
    return [
        f"{Path(w.filename).name}:{w.lineno}: {str(w.message).split('.')[0]}"
        for w in caught
        if issubclass(w.category, torch.jit.TracerWarning)
    ]


def _runner(path: Path, ort: Any):
    """A function that runs the written file in onnxruntime on an input tensor."""
    options = ort.SessionOptions()
    options.log_severity_level = 4  # its failures are reported here, as one line
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run_session(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])

    return run_session


def _opset(path: Path) -> int:
    import onnx

    return next(
        o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx")
    )


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    exporter: str | None = None,
    opset: int | None = None,
    size: Sequence[int] | None = None,
    check_size: Sequence[int] = CHECK_SIZE,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Export the model of a segmentation or reconstruction checkpoint to the ONNX file ``out``, checked.

    Args:
        checkpoint: a ``.safetensors`` file written by ldwseg's training.
        out: the file to write (replaced only once the new one has passed the check).
        exporter: ``"torchscript"`` (default) or ``"dynamo"``.
        opset: the ONNX opset (default: the exporter's own).
        size: ``(height, width)`` of the example input; default the checkpoint's
            ``data.crop_size`` square.
        check_size: the second, odd size the file is checked at.
        tolerance: the largest max-abs error accepted, relative to the output scale.

    Returns:
        ``output``, ``exporter``, ``opset``, ``task``,
        ``input``/``output_name`` (the graph's tensor names), ``export_size``, ``checks``
        (``shape`` and ``max_abs_error`` of each check), ``max_abs_error``,
        ``output_scale``, ``limit`` (``tolerance * output_scale``), ``seconds`` (export
        time) and ``bytes``.

    Raises:
        ConfigError: an option is invalid, or onnx/onnxruntime is not installed.
        CheckpointError: the checkpoint cannot be read (see :func:`~ldwseg.engine.checkpoints.load_run_model`).
        ExportError: the exporter fails on the model, or the file's error is above the limit;
            ``out`` is then left as it was.
    """
    exporter = _check_options(exporter, opset)
    check_size = _check_size(check_size, "--check-size")
    if size is not None:
        size = _check_size(size, "--size")
    ort = _onnx_runtime()
    out = Path(out)
    model, meta, cfg = load_run_model(checkpoint, "cpu")
    task = meta["task"]
    height, width = (cfg.data.crop_size, cfg.data.crop_size) if size is None else size
    output_name = OUTPUT_NAMES[task]
    generator = torch.Generator().manual_seed(0)
    example, *checks = (
        torch.randn(n, cfg.model.in_channels, h, w, generator=generator)
        for n, h, w in [(_EXAMPLE_BATCH, height, width), (_EXAMPLE_BATCH, height, width), (1, *check_size)]
    )
    with torch.no_grad():
        expected = [model(x) for x in checks]
    scale = max(float(e.abs().max()) for e in expected)
    limit = tolerance * scale if scale > 0 else tolerance
    result: dict[str, Any] = {
        "output": str(out), "exporter": exporter, "task": task, "input": INPUT_NAME,
        "output_name": output_name, "export_size": [height, width], "output_scale": scale, "limit": limit,
    }  # fmt: skip
    what = f"the {exporter} export of {checkpoint}"
    hint = "; try --exporter " + next(e for e in EXPORTERS if e != exporter)

    def write(temp: Path) -> None:
        start = time.perf_counter()
        try:
            frozen = _record(model, example, temp, exporter=exporter, opset=opset, output_name=output_name)
        except Exception as exc:  # the exporters raise many kinds (tracing, dynamo, ONNX conversion)
            cause = _root_cause(exc)
            raise ExportError(f"{what} failed ({type(cause).__name__}: {_first_line(cause)}){hint}") from exc
        result["seconds"] = time.perf_counter() - start
        why = f" (the trace froze a value at {frozen[0]})" if frozen else ""
        run = _runner(temp, ort)
        result["checks"] = []
        for x, want in zip(checks, expected):
            shape = tuple(x.shape)
            try:
                got = run(x)
            except Exception as exc:  # onnxruntime's own error types
                raise ExportError(f"{what} fails on an input of shape {shape}: {_first_line(exc)}{why}{hint}") from exc
            if got.shape != want.shape:
                raise ExportError(
                    f"{what} gives shape {tuple(got.shape)} for an input of shape {shape}, PyTorch "
                    f"{tuple(want.shape)}{why}{hint}"
                )
            error = float((got - want).abs().max())
            result["checks"].append({"shape": list(shape), "max_abs_error": error})
            if not error <= limit:  # also catches NaN
                raise ExportError(
                    f"{what} is not exact: max abs error {error:.2e} at input shape {shape} is above {limit:.2e} "
                    f"({tolerance:g} x the output scale {scale:.3g}); nothing was written{why}{hint}"
                )
        result["opset"] = _opset(temp)
        result["bytes"] = temp.stat().st_size

    atomic_write(out, write)
    result["max_abs_error"] = max(c["max_abs_error"] for c in result["checks"])
    return result


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception that ``exc`` was raised from: the dynamo exporter wraps the reason
    in a generic "Failed to export the model" error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without terminal colour codes, at most 300 characters."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
