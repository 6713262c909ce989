"""One-shot check of ldwseg on a CUDA GPU: exactness, mixed precision, training, compile, speed.

Takes at most ~5 minutes on one H100 and prints one table, one row per check::

    python bench/gpu_check.py                         # on a machine with CUDA (cuda:0, or --device)
    python bench/gpu_check.py --cpu-dry-run           # the same checks on the CPU where they make sense
    python bench/gpu_check.py --cpu-dry-run --quick --compile-backend eager   # what the test suite runs (< 60 s)

Checks (each row: its value, the limit it must meet, PASS / FAIL, or "info" for a number reported only):

* ops: ``ldw_analysis``, ``ldw_synthesis``, ``LDWPool2d``, ``LDWUnpool2d`` in float32 on the device against
  float64 on the CPU, K = 2, 4, 8, odd and even sizes, batch 1 and 8, NCHW and channels-last: outputs
  and the gradients of the input and the filters, largest error over largest entry <= 1e-5;
* autocast: pool + reverse pool under bf16 and fp16 autocast reconstruct their float32 input, PSNR >= 100 dB;
* unet: the default, paper-literal (down=ldw, haar, orthogonal, attention) and max-pool UNets, logits and
  gradients against float64 on the CPU with the same weights (TF32 off);
* train: ``ldwseg train`` for one short epoch on the synthetic data under ``--amp off``, ``bf16``, ``fp16``
  and bf16 + channels-last: finite losses, val mIoU and loss close to float32's, the fp16 loss scale
  and skipped steps; ``ldwseg evaluate`` of the best checkpoint equals the logged val mIoU; ``--resume``
  runs a second epoch; the loop takes no host synchronisation between reads (CUDA's sync debug mode);
* compile: ``torch.compile`` of the default UNet against eager (one training step) and its first-call time;
* speed: LDWPool2d against MaxPool2d(2), forward + backward at (8, 64, 128, 128), and one training step of
  each UNet with its peak memory (``ldwseg.analysis.cost``), timed with torch.utils.benchmark;
* attention: EnergyAttention under fp16 autocast on 1024x1024 maps, forward and backward finite.

``--cpu-dry-run`` runs them on the CPU (float32 against float64; fp16 autocast where the CPU has it; no
sync debug mode, no fp16 training) so that a test exercises the script's code. ``--quick`` uses small
sizes and compiles the max-pool UNet (dynamo takes a minute over the LDW ops on a small CPU);
``--compile-backend eager`` captures without generating code. A check that would start after ``--budget``
seconds (300), or the compile check with less than 120 s of it left, fails as not run. The ops, unet,
train and compile checks run with TF32 off (cuDNN's convolutions use it by default). Each row is also
printed to stderr as it comes, so a run stopped by a time limit still leaves the rows it reached.

Exit status: 0 when every check passes, 1 when one fails, 77 (automake's and CTest's "skipped") when
there is no CUDA device and ``--cpu-dry-run`` is not given: then it prints one line and checks nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

SKIPPED_EXIT = 77
OPS_LIMIT = 1e-5
PSNR_LIMIT = 100.0
UNET_LIMITS = {"logits": 1e-5, "grads": 1e-3}
"""Float32 against float64 (or compiled against eager): logits by their largest error over their largest entry
(measured on the CPU: ~2e-7), gradients by the norm of the error over the norm of all gradients (~1e-6 for the
LDW UNets; ~4e-5 for max pooling, whose near-ties route a gradient to another pixel in float32)."""
DESIGNS = {
    "default": [],
    "paper": ["model.down=ldw", "model.wavelet=haar", "model.constraint=orthogonal", "model.attention=true"],
    "maxpool": ["model.down=maxpool", "model.up=deconv"],
}
AMP_RUNS = {
    "off": [],
    "bf16": ["--amp", "bf16"],
    "fp16": ["--amp", "fp16"],
    "bf16+cl": ["--amp", "bf16", "--channels-last"],
}


@dataclass
class Row:
    check: str
    value: str
    limit: str = ""
    ok: bool | None = None  # None: reported only

    @property
    def status(self) -> str:
        return "info" if self.ok is None else "PASS" if self.ok else "FAIL"


class Report:
    """The table's rows; a check that raises becomes a FAIL row with its error."""

    def __init__(self, *, echo: bool = True) -> None:
        self.rows: list[Row] = []
        self.echo = echo

    def add(self, check: str, value: str, limit: str = "", ok: bool | None = None) -> None:
        row = Row(check, value, limit, ok)
        self.rows.append(row)
        if self.echo:  # as each row comes, to stderr: a run killed by its time limit still leaves its rows
            line = f"gpu_check: {row.status} {row.check}: {row.value} {row.limit}".rstrip()
            print(line, file=sys.stderr, flush=True)

    def bound(self, check: str, value: float, limit: float, *, at_least: bool = False, fmt: str = ".2e") -> None:
        ok = math.isfinite(value) and (value >= limit if at_least else value <= limit)
        self.add(check, format(value, fmt), f"{'>=' if at_least else '<='} {limit:g}", ok)

    def run(self, group: str, check: Callable[[], None]) -> None:
        try:
            check()
        except Exception as err:  # a check that breaks is a failed check, and the others still run
            self.add(group, f"error: {type(err).__name__}: {first_line(err, 150)}", ok=False)

    def table(self) -> str:
        widths = [
            max((len(r.check) for r in self.rows), default=5),
            max((len(r.value) for r in self.rows), default=5),
            10,
        ]
        head = f"{'check':{widths[0]}}  {'value':{widths[1]}}  {'limit':{widths[2]}}  status"
        lines = [head, "-" * len(head)]
        lines += [f"{r.check:{widths[0]}}  {r.value:{widths[1]}}  {r.limit:{widths[2]}}  {r.status}" for r in self.rows]
        return "\n".join(lines)

    @property
    def failed(self) -> int:
        return sum(r.ok is False for r in self.rows)


def first_line(err: BaseException | str, width: int = 80) -> str:
    """The first line of an error's message (or of a text), at most ``width`` characters."""
    lines = str(err).strip().splitlines()
    return lines[0][:width] if lines else ""


def last_line(text: str, width: int = 120) -> str:
    """The last line of a command's output (where ldwseg's one-line error is), at most ``width`` characters."""
    lines = text.strip().splitlines()
    return lines[-1][:width] if lines else ""


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference over the largest entry of ``want`` (float64, on the CPU)."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


@dataclass
class Setup:
    device: torch.device
    quick: bool
    work: Path
    compile_backend: str


# --- ops ----------------------------------------------------------------------------------------------------------


def _op_cases(setup: Setup) -> list[tuple[int, int, int, int, bool]]:
    """``(N, C, H, W, channels_last)``: odd and even sizes, batch 1 and 8, both layouts."""
    sizes = [(9, 10), (8, 8)] if setup.quick else [(33, 48), (32, 50)]
    batches = (1, 2) if setup.quick else (1, 8)
    channels = 4 if setup.quick else 16
    return [(n, channels, h, w, cl) for n in batches for h, w in sizes for cl in (False, True)]


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, inputs, grad_out))


def check_ops(setup: Setup, report: Report) -> None:
    from ldwseg.pooling import LDWPool2d, LDWUnpool2d, initial_filters, ldw_analysis, ldw_synthesis

    device = setup.device
    gen = torch.Generator().manual_seed(0)
    for k, wavelet in ((2, "haar"), (4, "db2"), (8, "db4")):
        low, high = (torch.tensor(f, dtype=torch.float64) for f in initial_filters(wavelet, constraint="orthogonal"))
        worst = dict.fromkeys(("ldw_analysis", "ldw_synthesis", "LDWPool2d", "LDWUnpool2d"), 0.0)
        for n, c, h, w, cl in _op_cases(setup):
            layout = torch.channels_last if cl else torch.contiguous_format
            x64 = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
            y64 = torch.randn(n, 4 * c, (h + 1) // 2, (w + 1) // 2, generator=gen, dtype=torch.float64)
            for name, fn, inp in (
                ("ldw_analysis", lambda t, lo, hi: ldw_analysis(t, lo, hi), x64),
                ("ldw_synthesis", lambda t, lo, hi, h=h, w=w: ldw_synthesis(t, lo, hi, output_size=(h, w)), y64),
            ):
                ref_in, ref_lo, ref_hi = (t.clone().requires_grad_() for t in (inp, low, high))
                ref = fn(ref_in, ref_lo, ref_hi)
                g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
                ref_grads = _grads(ref, [ref_in, ref_lo, ref_hi], g)
                dev_in = inp.float().to(device).contiguous(memory_format=layout).requires_grad_()
                dev_lo, dev_hi = (t.float().to(device).requires_grad_() for t in (low, high))
                out = fn(dev_in, dev_lo, dev_hi)
                dev_grads = _grads(out, [dev_in, dev_lo, dev_hi], g.float().to(device))
                errors = [relative_error(out, ref)] + [relative_error(a, b) for a, b in zip(dev_grads, ref_grads)]
                worst[name] = max(worst[name], *errors)
            pool = LDWPool2d(wavelet=wavelet, constraint="orthogonal")
            for name, module, inp in (("LDWPool2d", pool, x64), ("LDWUnpool2d", LDWUnpool2d(pool), y64)):
                ref_module = copy.deepcopy(module).double()
                dev_module = copy.deepcopy(module).to(device)
                ref_in = inp.clone().requires_grad_()
                dev_in = inp.float().to(device).contiguous(memory_format=layout).requires_grad_()
                call = (lambda m, t: m(t)) if name == "LDWPool2d" else (lambda m, t, h=h, w=w: m(t, output_size=(h, w)))
                ref = call(ref_module, ref_in)
                g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
                ref_grads = _grads(ref, [ref_in, *ref_module.parameters()], g)
                out = call(dev_module, dev_in)
                dev_grads = _grads(out, [dev_in, *dev_module.parameters()], g.float().to(device))
                errors = [relative_error(out, ref)] + [relative_error(a, b) for a, b in zip(dev_grads, ref_grads)]
                worst[name] = max(worst[name], *errors)
        for name, error in worst.items():
            report.bound(f"ops {name} K={k} (out, grads)", error, OPS_LIMIT)


def check_autocast(setup: Setup, report: Report) -> None:
    from ldwseg.pooling import LDWPool2d, LDWUnpool2d

    device = setup.device
    shape = (2, 4, 33, 32) if setup.quick else (8, 16, 129, 128)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)).to(device)
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal").to(device)
    unpool = LDWUnpool2d(pool)
    for amp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        try:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
                back = unpool(pool(x), output_size=x.shape[-2:])
        except RuntimeError as err:  # fp16 autocast on a CPU whose torch lacks it; on CUDA a failure
            if device.type != "cpu":
                raise
            report.add(f"autocast {amp} round trip", f"n/a on {device.type}: {first_line(err, 60)}")
            continue
        mse = (back.float() - x).square().mean().item()
        psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)  # x in [0, 1): peak 1
        report.bound(f"autocast {amp} round trip PSNR dB", psnr, PSNR_LIMIT, at_least=True, fmt=".1f")


# --- networks -----------------------------------------------------------------------------------------------------


def _config(overrides: list[str]):
    from ldwseg.config import apply_overrides
    from ldwseg.tasks import load_config

    return apply_overrides(load_config(None), overrides)


def _unet(design: str, *, width: int, depth: int = 4) -> nn.Module:
    from ldwseg.engine.build import build_model

    torch.manual_seed(0)
    cfg = _config([*DESIGNS[design], f"model.base_width={width}", f"model.depth={depth}"])
    return build_model(cfg, 5)


@contextlib.contextmanager
def no_tf32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _train_step(model: nn.Module, images: torch.Tensor, target: torch.Tensor, net: nn.Module | None = None):
    """Logits and parameter gradients of one cross-entropy step (``net``: what runs the forward)."""
    logits = (model if net is None else net)(images)
    loss = nn.functional.cross_entropy(logits.double(), target)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    return logits.detach(), {n: g for n, g in zip(names, grads) if g is not None}


def normwise_error(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    """The norm of the error of all gradients together over their norm (``want`` float64, on the CPU)."""
    error = torch.cat([(got[name].detach().double().cpu() - g).flatten() for name, g in want.items()])
    return (error.norm() / torch.cat([g.flatten() for g in want.values()]).norm()).item()


def check_unets(setup: Setup, report: Report) -> None:
    """Each UNet in evaluation mode (BatchNorm with its running statistics), where the network is a smooth
    function of its inputs and weights: in training mode BatchNorm over a small batch turns float32 rounding
    into other ReLU masks (the default UNet's gradients differ by 1% between float32 and float64 on the
    CPU alone), which would say nothing about the device's kernels. Training runs in the train checks."""
    size, batch, width = (32, 2, 4) if setup.quick else (64, 4, 8)
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 5, (batch, size, size), generator=gen)
    for design in DESIGNS:
        model = _unet(design, width=width).eval()
        ref_logits, ref_grads = _train_step(copy.deepcopy(model).double(), images, target)
        with no_tf32():
            logits, grads = _train_step(
                model.to(setup.device), images.float().to(setup.device), target.to(setup.device)
            )
        report.bound(f"unet {design} logits vs float64 CPU", relative_error(logits, ref_logits), UNET_LIMITS["logits"])
        report.bound(f"unet {design} grads vs float64 CPU", normwise_error(grads, ref_grads), UNET_LIMITS["grads"])


# --- training through the CLI -------------------------------------------------------------------------------------


class ScaleLog:
    """Records a GradScaler's scale after every update (reads it: one synchronisation per step)."""

    def __init__(self) -> None:
        self.scales: list[float] = []

    def wrap(self, make: Callable):
        def recording(precision):
            scaler = make(precision)
            if scaler is not None:
                self.scales.append(scaler.get_scale())
                update = scaler.update

                def update_and_record(*args, **kwargs):
                    update(*args, **kwargs)
                    self.scales.append(scaler.get_scale())

                scaler.update = update_and_record
            return scaler

        return recording

    @property
    def skipped(self) -> int:
        return sum(b < a for a, b in zip(self.scales, self.scales[1:]))

    @property
    def steps(self) -> int:
        return max(0, len(self.scales) - 1)


def _cli(*args: str) -> tuple[int, str, str]:
    """``ldwseg ARGS`` in this process: exit status, stdout, stderr."""
    from ldwseg.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _rows(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def check_training(setup: Setup, report: Report) -> None:
    import ldwseg.engine.prepare as prepare_module

    device = setup.device.type if setup.device.index is None else f"cuda:{setup.device.index}"
    steps, width, crop = (2, 4, 32) if setup.quick else (6, 8, 64)
    common = ["--epochs", "1", "--device", device, "--set", f"model.base_width={width}", "--set",
              f"data.crop_size={crop}", "--set", "train.batch_size=4", "--set", f"train.max_steps_per_epoch={steps}",
              "--set", "train.val_batch_size=4"]  # fmt: skip
    runs = {}
    amps = dict(AMP_RUNS)
    if setup.device.type != "cuda":
        del amps["fp16"]  # fp16 training needs CUDA's loss scaler (ldwseg refuses it on the CPU)
        report.add("train fp16", "n/a on cpu (fp16 needs CUDA)")
    for name, extra in amps.items():
        out = setup.work / f"train-{name}"
        log = ScaleLog()
        real = prepare_module._scaler
        prepare_module._scaler = log.wrap(real)
        try:
            code, _, err = _cli("train", "--out", str(out), *common, *extra)
        finally:
            prepare_module._scaler = real
        if code != 0:
            report.add(f"train {name}", f"exit {code}: {last_line(err)}", ok=False)
            continue
        row = _rows(out)[-1]
        runs[name] = row
        finite = all(math.isfinite(row[k]) for k in ("train_loss", "task_loss", "wavelet_loss"))
        report.add(f"train {name} losses finite", f"loss {row['train_loss']:.4f}, val mIoU {row['val_miou']:.4f}",
                   "finite", finite)  # fmt: skip
        if name == "fp16":
            report.add("train fp16 loss scale, skipped steps",
                       f"{log.scales[-1]:g}, {log.skipped} of {log.steps}" if log.steps else "no scaler",
                       "< 1/2 skipped", log.steps > 0 and 2 * log.skipped < log.steps)  # fmt: skip
    if "off" not in runs:
        return
    base = runs["off"]
    for name, row in runs.items():
        if name == "off":
            continue
        loss_gap = abs(row["train_loss"] - base["train_loss"]) / base["train_loss"]
        report.bound(f"train {name} loss vs float32 (relative)", loss_gap, 0.05, fmt=".3f")
        report.bound(f"train {name} val mIoU vs float32", abs(row["val_miou"] - base["val_miou"]), 0.05, fmt=".4f")
    off = setup.work / "train-off"
    code, out, err = _cli("evaluate", str(off / "best.safetensors"), "--device", device, "--json")
    if code != 0:
        report.add("evaluate best = logged val", f"exit {code}: {last_line(err)}", ok=False)
    else:
        miou = json.loads(out.strip().splitlines()[-1])["miou"]
        # exact on the CPU; on CUDA training validated under cuDNN's autotuner, whose other convolution
        # algorithms may flip the argmax of a few near-tied pixels
        limit = 1e-4 if setup.device.type == "cuda" else 1e-12
        report.bound("evaluate best = logged val mIoU", abs(miou - base["val_miou"]), limit, fmt=".1e")
    code, _, err = _cli("train", "--out", str(off), *common, "--epochs", "2", "--resume")
    rows = _rows(off) if code == 0 else []
    report.add("train --resume runs epoch 2", f"exit {code}, {len(rows)} epochs logged", "2 epochs",
               code == 0 and len(rows) == 2 and math.isfinite(rows[-1]["train_loss"]))  # fmt: skip


def check_no_sync(setup: Setup, report: Report) -> None:
    """A training step queues work and never waits for the GPU (the loss sums are read only when asked)."""
    from ldwseg.engine.epoch import train_one_epoch
    from ldwseg.engine.precision import Precision

    if setup.device.type != "cuda":
        report.add("loop host syncs per step", "n/a on cpu (CUDA's sync debug mode)")
        return
    for design in ("conv", *DESIGNS):
        torch.manual_seed(0)
        model = nn.Conv2d(3, 5, 3, padding=1) if design == "conv" else _unet(design, width=8)
        model = model.to(setup.device)
        optimizer = torch.optim.Adam(model.parameters())
        data = [(torch.randn(2, 3, 64, 64).pin_memory(), torch.randint(0, 5, (2, 64, 64)).pin_memory())] * 4
        train_one_epoch(model, data[:1], optimizer, nn.CrossEntropyLoss(), precision=Precision(setup.device))

        def strict(batches):
            for batch in batches:
                torch.cuda.set_sync_debug_mode("error")
                yield batch
            torch.cuda.set_sync_debug_mode("default")

        try:
            train_one_epoch(model, data, optimizer, nn.CrossEntropyLoss(), precision=Precision(setup.device),
                            progress=strict, read_every=10**6)  # fmt: skip
            value, ok = "none in 4 steps", True
        except RuntimeError as err:
            if "synchroniz" not in str(err):  # the sync debug mode's error; anything else is a failure
                raise
            value, ok = f"synchronises: {first_line(err)}", False
        finally:
            torch.cuda.set_sync_debug_mode("default")
        # the loop itself must not wait; a network that does is reported, not failed
        report.add(f"loop host syncs per step ({design})", value, "none", ok if design == "conv" else None)


def check_compile(setup: Setup, report: Report) -> None:
    """One training step (training mode) of a small UNet, compiled against eager: the network of
    tests/engine/test_compile.py, small enough that BatchNorm keeps rounding differences at rounding."""
    size, batch = 16, 2
    design = "maxpool" if setup.quick else "default"  # quick: dynamo takes a minute over the LDW ops on a CPU
    model = _unet(design, width=4, depth=2)
    model = model.to(setup.device).train()
    twin = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(batch, 3, size, size, generator=gen).to(setup.device)
    target = torch.randint(0, 5, (batch, size, size), generator=gen).to(setup.device)
    torch._dynamo.reset()
    compiled = torch.compile(twin, backend=setup.compile_backend)
    start = time.perf_counter()
    logits, grads = _train_step(twin, images, target, net=compiled)
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)  # the backward is still queued when the call returns
    first = time.perf_counter() - start
    want_logits, want_grads = _train_step(model, images, target)
    report.add(f"compile unet {design} ({setup.compile_backend}) first call", f"{first:.1f} s")
    report.bound(f"compile unet {design} logits vs eager", relative_error(logits, want_logits), UNET_LIMITS["logits"])
    report.bound(f"compile unet {design} grads vs eager", normwise_error(grads, want_grads), UNET_LIMITS["grads"])


def check_speed(setup: Setup, report: Report) -> None:
    import torch.utils.benchmark as benchmark

    from ldwseg.analysis.cost import training_cost
    from ldwseg.pooling import LDWPool2d
    from ldwseg.tasks import get_task

    shape = (1, 8, 32, 32) if setup.quick else (8, 64, 128, 128)
    x = torch.randn(shape, device=setup.device, requires_grad=True)
    times = {}
    for name, module in (("MaxPool2d(2)", nn.MaxPool2d(2)), ("LDWPool2d K=4", LDWPool2d(wavelet="db2"))):
        module = module.to(setup.device)
        grad = torch.ones_like(module(x))

        def step(module=module, grad=grad) -> None:
            torch.autograd.grad(module(x), [x, *module.parameters()], grad)

        timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
        times[name] = timer.blocked_autorange(min_run_time=0.05 if setup.quick else 0.5).median * 1e3
        report.add(f"speed {name} fwd+bwd {shape}", f"{times[name]:.3f} ms")
    report.add("speed LDWPool2d / MaxPool2d", f"{times['LDWPool2d K=4'] / times['MaxPool2d(2)']:.2f}x")
    width, crop, batch = (4, 32, 2) if setup.quick else (64, 256, 8)
    device = "cpu" if setup.device.type == "cpu" else str(setup.device)
    for design, overrides in DESIGNS.items():
        cfg = _config([*overrides, f"model.base_width={width}", f"data.crop_size={crop}",
                       f"train.batch_size={batch}", f"train.device={device}"])  # fmt: skip
        cost = training_cost(cfg, get_task("seg"), 21)
        report.add(f"speed unet {design} step (w{width}, {batch}x{crop}^2)",
                   f"{cost['step_ms']:.1f} ms, peak {cost['peak_mem_mb']:.0f} MiB ({cost['peak_mem_source']})")  # fmt: skip


def check_attention(setup: Setup, report: Report) -> None:
    from ldwseg.pooling import EnergyAttention

    size, channels = (64, 8) if setup.quick else (1024, 64)
    dtype = torch.float16
    conv = nn.Conv2d(4, channels, 1).to(setup.device)
    attention = EnergyAttention(channels).to(setup.device)
    x = torch.randn(1, 4, size, size, device=setup.device) * 4
    try:
        with torch.autocast(setup.device.type, dtype=dtype):
            y = attention(conv(x))
    except RuntimeError as err:  # fp16 autocast on a CPU whose torch lacks it; on CUDA a failure
        if setup.device.type != "cpu":
            raise
        report.add("attention fp16 autocast", f"n/a on {setup.device.type}: {first_line(err, 60)}")
        return
    y.float().square().mean().backward()
    finite = bool(torch.isfinite(y).all()) and all(torch.isfinite(p.grad).all() for p in conv.parameters())
    report.add(f"attention fp16 autocast {size}x{size}", f"output {y.dtype}, grads finite" if finite else "non-finite",
               "finite", finite)  # fmt: skip


CHECKS = {
    "ops": check_ops, "autocast": check_autocast, "unet": check_unets, "attention": check_attention,
    "sync": check_no_sync, "train": check_training, "speed": check_speed, "compile": check_compile,
}  # fmt: skip
"""The checks in the order they run: the cheap and exact ones first, the compiler (whose time varies most) last."""

FLOAT32_CHECKS = ("ops", "unet", "train", "compile")
"""The checks that compare against float32 or float64: TF32 is off while they run (cuDNN's convolutions
use it by default, about 1e-3 relative), so a limit of 1e-5 measures ldwseg, not the tensor cores."""

MIN_SECONDS = {"compile": 120.0}
"""The budget a check needs left to start (not with ``--quick``): inductor's first call on a fresh machine
can take minutes."""


@contextlib.contextmanager
def data_folder(path: Path):
    """``LDWSEG_DATA`` set to ``path`` while the checks run (the synthetic set is generated there, not in the
    checkout), as it was after."""
    before = os.environ.get("LDWSEG_DATA")
    os.environ["LDWSEG_DATA"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["LDWSEG_DATA"]
        else:
            os.environ["LDWSEG_DATA"] = before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="The CUDA device to check [default: cuda].")
    parser.add_argument("--cpu-dry-run", action="store_true", help="Run the checks on the CPU, to test this script.")
    parser.add_argument("--quick", action="store_true", help="Small sizes (seconds, for the test suite).")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend [default: inductor].")
    parser.add_argument("--only", default=",".join(CHECKS), help=f"Comma-separated of {', '.join(CHECKS)}.")
    parser.add_argument("--budget", type=float, default=300.0, help="Seconds the checks may take [default: 300]; "
                        "a check that would start later fails as not run.")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here, nothing checked (run it on a GPU machine, or --cpu-dry-run)")
        return SKIPPED_EXIT
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        parser.error(f"unknown check {unknown[0]!r}; choose from {', '.join(CHECKS)}")
    device = torch.device("cpu" if args.cpu_dry_run else args.device)
    # named before the checks: after a sticky CUDA error the device can no longer be asked
    label = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "the CPU (dry run)"
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ldwseg-gpu-check-") as work, data_folder(Path(work) / "data"):
        setup = Setup(device, args.quick, Path(work), args.compile_backend)
        for name in chosen:
            left = args.budget - (time.perf_counter() - started)
            if left < (0.0 if args.quick else MIN_SECONDS.get(name, 0.0)):
                report.add(name, f"not run: {max(left, 0):.0f} s of the {args.budget:g} s budget left", ok=False)
                continue
            with no_tf32() if name in FLOAT32_CHECKS else contextlib.nullcontext():
                report.run(name, lambda check=CHECKS[name]: check(setup, report))
    print(f"ldwseg gpu_check on {label}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s")
    print(report.table())
    print(f"{report.failed} failed" if report.failed else "all checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
