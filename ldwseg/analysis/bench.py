"""Side-by-side timing of LDW pooling and the layers it replaces (``ldwseg bench``).

Every case runs in the same process on the same inputs; the reported figure is the
median of ``repeats`` runs, with the cases of one shape run in turn (round robin) so
that drift in the machine's load affects them alike. By default each timed run follows
an untimed run of the same case (warm caches, as in a plain repeat loop); ``warm=False``
times them with the other cases in between (cold caches). "fwd" runs under ``no_grad``;
"fwd+bwd" also computes the gradients of the input and of every parameter with
``torch.autograd.grad``. Pools are compared with ``MaxPool2d(2)`` on the same
``(N, C, H, W)`` input. The reverse pool maps ``(N, 4C, H/2, W/2)`` to ``(N, C, H, W)``;
it is compared with the ``ConvTranspose2d(2C, C, 2, stride=2)`` that a UNet decoder
uses at that level (the LDW decoder replaces it by a 1x1 conv plus the reverse pool).
pytorch_wavelets' Haar DWT/IDWT, when installed, is timed with the K=2 LDW pool as its
baseline, so there a ratio above 1 means LDW pooling is faster; :func:`skipped_peers`
names the peers left out, and why.

Every case runs on one ``device`` (the CPU by default). On CUDA each call is timed with the
clock of :mod:`torch.utils.benchmark`, which waits for the kernels a call queued
(:func:`~ldwseg.analysis.cost.step_clock`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..pooling import LDWPool2d, LDWUnpool2d
from .cost import device_label, step_clock

__all__ = ["SHAPES", "BenchRow", "run_pool_benchmark", "format_table", "skipped_peers"]

SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (8, 64, 128, 128),
    (8, 128, 64, 64),
    (8, 256, 32, 32),
    (8, 512, 16, 16),
)


@dataclass
class BenchRow:
    shape: tuple[int, int, int, int]
    name: str
    fwd_ms: float
    fwdbwd_ms: float
    baseline: str | None = None
    ratio_fwd: float | None = None
    ratio_fwdbwd: float | None = None


def _cases(module: nn.Module, x: Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """The forward-only and forward+backward closures of one module on one input."""
    inputs = [x.detach().requires_grad_()] + [p for p in module.parameters() if p.requires_grad]
    grad_outs = [torch.randn_like(t) for t in _tensors(module(inputs[0]))]

    def forward() -> None:
        with torch.no_grad():
            module(x)

    def forward_backward() -> None:
        torch.autograd.grad(_tensors(module(inputs[0])), inputs, grad_outs)

    return forward, forward_backward


def _tensors(out: Tensor | tuple | list) -> list[Tensor]:
    """Every tensor of a module's output (pytorch_wavelets returns ``(yl, [yh])``)."""
    if isinstance(out, Tensor):
        return [out]
    return [t for item in out for t in _tensors(item)]


def _round_robin_ms(calls: list[Callable[[], None]], repeats: int, warm: bool, device: torch.device) -> list[float]:
    """Median milliseconds of each call, the calls interleaved so drift hits all alike.

    ``warm``: each timed call directly follows an untimed call of the same case, so its
    inputs are in cache as in a plain repeat loop; otherwise the other cases run between
    (inputs come from memory, as in a network). Times are read off ``device``'s :func:`step_clock`.
    """
    clock = step_clock(device)
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, call in enumerate(calls):
            if warm:
                call()
            start = clock()
            call()
            times[i].append(clock() - start)
    return [1e3 * statistics.median(t) for t in times]


class _Clone(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.clone()


def _pytorch_wavelets() -> tuple[nn.Module, nn.Module]:
    """pytorch_wavelets' one-level Haar DWT and IDWT, the IDWT taking the reverse pool's ``(N, 4C, H/2, W/2)``."""
    from pytorch_wavelets import DWTForward, DWTInverse

    class _Inverse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.idwt = DWTInverse(wave="haar", mode="periodization")

        def forward(self, y: Tensor) -> Tensor:
            c = y.shape[1] // 4
            highs = torch.stack([y[:, c : 2 * c], y[:, 2 * c : 3 * c], y[:, 3 * c :]], dim=2)
            return self.idwt((y[:, :c], [highs]))

    return DWTForward(J=1, wave="haar", mode="periodization"), _Inverse()


_PEERS: dict[str, tuple[str, Callable[[], tuple[nn.Module, nn.Module]]]] = {
    "pytorch_wavelets haar": ("pytorch_wavelets", _pytorch_wavelets),
}
"""Other implementations of the transform: name -> (the package it needs, its (DWT, IDWT) modules)."""


def _peers() -> tuple[dict[str, tuple[nn.Module, nn.Module]], dict[str, str]]:
    """The peers this machine can time, and those it cannot with the reason."""
    modules, skipped = {}, {}
    for name, (package, make) in _PEERS.items():
        try:
            modules[name] = make()
        except ImportError as exc:
            skipped[name] = f"{package} is not installed ({exc}); pip install {package} to time it"
    return modules, skipped


def skipped_peers() -> dict[str, str]:
    """The peers that :func:`run_pool_benchmark` leaves out on this machine: name -> why (a missing package)."""
    return _peers()[1]


def run_pool_benchmark(
    *,
    shapes: tuple[tuple[int, int, int, int], ...] = SHAPES,
    repeats: int = 15,
    quick: bool = False,
    warm: bool = True,
    device: torch.device | str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every case on every shape on ``device`` and return the rows with their ratios."""
    device = torch.device(device)
    if quick:
        shapes = shapes[-1:]
    rows: list[BenchRow] = []
    gen = torch.Generator().manual_seed(0)
    peers, _ = _peers()
    for shape in shapes:
        n, c, h, w = shape
        if progress:
            progress(f"timing {shape} ...")
        x = torch.randn(shape, generator=gen).to(device)
        sub = torch.randn(n, 4 * c, h // 2, w // 2, generator=gen).to(device)
        dec = torch.randn(n, 2 * c, h // 2, w // 2, generator=gen).to(device)
        cases: list[tuple[str, nn.Module, Tensor, str | None]] = [
            ("x.clone()", _Clone(), x, None),
            ("MaxPool2d(2)", nn.MaxPool2d(2), x, None),
            ("ConvTranspose2d(2C,C,2,2)", nn.ConvTranspose2d(2 * c, c, 2, stride=2), dec, None),
        ]
        for wavelet in ("haar", "db2"):
            pool = LDWPool2d(wavelet=wavelet, constraint="orthogonal")
            cases.append((f"LDWPool2d K={pool.kernel_size}", pool, x, "MaxPool2d(2)"))
            cases.append((f"LDWUnpool2d K={pool.kernel_size}", LDWUnpool2d(pool), sub, "ConvTranspose2d(2C,C,2,2)"))
        for peer, (dwt, idwt) in peers.items():
            cases.append((f"{peer} DWT", dwt, x, "LDWPool2d K=2"))
            cases.append((f"{peer} IDWT", idwt, sub, "LDWUnpool2d K=2"))
        calls = [_cases(module.to(device), inp) for _, module, inp, _ in cases]
        fwd = _round_robin_ms([f for f, _ in calls], repeats, warm, device)
        fwdbwd = _round_robin_ms([fb for _, fb in calls], repeats, warm, device)
        shape_rows = {name: BenchRow(shape, name, f, fb, base) for (name, _, _, base), f, fb in zip(cases, fwd, fwdbwd)}
        for row in shape_rows.values():
            if row.baseline is not None:
                ref = shape_rows[row.baseline]
                row.ratio_fwd, row.ratio_fwdbwd = row.fwd_ms / ref.fwd_ms, row.fwdbwd_ms / ref.fwdbwd_ms
        rows.extend(shape_rows.values())
    return rows


def format_table(rows: list[BenchRow], device: torch.device | str = "cpu") -> str:
    """A plain-text table of the rows (timed on ``device``), one block per shape."""
    lines = [
        f"torch {torch.__version__}, {device_label(torch.device(device))}; medians in ms; "
        "ratio = time / baseline time (below 1 is faster)",
    ]
    header = f"{'case':32s} {'fwd':>9s} {'fwd+bwd':>9s} {'ratio fwd':>10s} {'ratio f+b':>10s}  baseline"
    for shape in dict.fromkeys(r.shape for r in rows):
        lines += ["", f"input {shape}", header]
        for r in (r for r in rows if r.shape == shape):
            rf = "" if r.ratio_fwd is None else f"{r.ratio_fwd:.2f}"
            rb = "" if r.ratio_fwdbwd is None else f"{r.ratio_fwdbwd:.2f}"
            lines.append(f"{r.name:32s} {r.fwd_ms:9.2f} {r.fwdbwd_ms:9.2f} {rf:>10s} {rb:>10s}  {r.baseline or ''}")
    return "\n".join(lines)
