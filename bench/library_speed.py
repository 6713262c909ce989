"""LDW pooling (K=2) against MaxPool2d(2), and its reverse against a UNet's ConvTranspose2d, in a plain script.

This is what a library user sees who imports ldwseg and calls ``LDWPool2d`` in a loop:
forward and backward (the gradients of the input and of the filters) on the CPU, with the
process's memory allocator as it is (glibc's default; ldwseg never changes it by itself).
The layers are interleaved so that load on the machine hits both alike; each figure is the
median of ``--repeats`` timed runs, each after an untimed one. It prints the milliseconds
and the ratio LDW / baseline per shape; a ratio at most 1 means LDW pooling is no slower.
The last row times ``LDWUnpool2d`` from ``(8, 4C, 64, 64)`` subbands against the
``ConvTranspose2d(2C, C, 2, stride=2)`` of the UNet decoder level that it replaces, both
giving ``(8, C, 128, 128)`` with ``C = 64``.

Usage: ``python bench/library_speed.py [--repeats 15] [--threads T] [--keep-freed-memory]
[--shape N,C,H,W ...]`` (``--keep-freed-memory`` first opts in to
:func:`ldwseg.pooling.keep_freed_memory`, as ``ldwseg train`` does; ``--shape`` times only
the pools at the shapes given, in that order, and not the reverse pool). The last column
counts the page faults of a layer's forward and backward (minor faults of the process per
call, from ``getrusage``): the memory glibc hands back to the system and the layer then
touches again, which is what the process's allocator state changes.
"""

import argparse
import resource
import statistics
import time

import torch
from torch import nn

from ldwseg import LDWPool2d, LDWUnpool2d
from ldwseg.pooling import keep_freed_memory

SHAPES = ((8, 64, 128, 128), (8, 128, 64, 64), (8, 256, 32, 32), (8, 512, 16, 16))
DECODER = (8, 64, 128, 128)  # the output of the reverse pool and of the transposed conv


def fwd_bwd(module: nn.Module, x: torch.Tensor):
    """A closure that runs ``module`` forward and backward on ``x``."""
    x = x.detach().requires_grad_()
    inputs = [x, *(p for p in module.parameters() if p.requires_grad)]
    grad_out = torch.randn_like(module(x))

    def run() -> None:
        torch.autograd.grad(module(x), inputs, grad_out)

    return run


def median_ms(runs: list, repeats: int, faults: list[float] | None = None) -> list[float]:
    """Median milliseconds of each closure, interleaved, each timed run after an untimed one.

    ``faults``, when given, receives each closure's mean minor page faults per call."""
    times, counts = [[] for _ in runs], [0] * len(runs)
    for _ in range(repeats):
        for i, (run, spent) in enumerate(zip(runs, times)):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            run()
            start = time.perf_counter()
            run()
            spent.append(1000 * (time.perf_counter() - start))
            counts[i] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    if faults is not None:
        faults[:] = [count / (2 * repeats) for count in counts]
    return [statistics.median(t) for t in times]


def shape_arg(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape expects N,C,H,W such as 8,128,64,64, got {text!r}") from None
    if len(shape) != 4 or min(shape) < 1 or shape[2] % 2 or shape[3] % 2:
        raise argparse.ArgumentTypeError(f"--shape expects four positive sizes N,C,H,W with H, W even, got {text!r}")
    return shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per layer and shape (the median is shown)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--keep-freed-memory", action="store_true", help="opt in to ldwseg.pooling.keep_freed_memory() first"
    )
    parser.add_argument(
        "--shape", type=shape_arg, action="append", help="N,C,H,W to time the pools at (repeatable) [default: four]"
    )
    args = parser.parse_args()
    kept = keep_freed_memory() if args.keep_freed_memory else False
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    allocator = "freed memory kept (keep_freed_memory)" if kept else "as it is (glibc default)"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}, allocator {allocator}"
    )
    print("| input | LDW fwd+bwd ms | baseline | baseline fwd+bwd ms | LDW / baseline | page faults LDW / baseline |")
    print("|---|---|---|---|---|---|")
    faults: list[float] = []
    for shape in args.shape or SHAPES:
        x = torch.randn(shape)
        runs = [fwd_bwd(LDWPool2d(shape[1]), x), fwd_bwd(nn.MaxPool2d(2), x)]
        ldw, maxpool = median_ms(runs, args.repeats, faults)
        print(
            f"| {shape} | {ldw:.2f} | MaxPool2d(2) | {maxpool:.2f} | {ldw / maxpool:.2f}x | "
            f"{faults[0]:.0f} / {faults[1]:.0f} |",
            flush=True,
        )
    if args.shape:
        return
    n, c, h, w = DECODER
    bands, decoder_in = torch.randn(n, 4 * c, h // 2, w // 2), torch.randn(n, 2 * c, h // 2, w // 2)
    unpool, deconv = LDWUnpool2d(LDWPool2d(c)), nn.ConvTranspose2d(2 * c, c, 2, stride=2)
    ldw, conv = median_ms([fwd_bwd(unpool, bands), fwd_bwd(deconv, decoder_in)], args.repeats, faults)
    print(
        f"| {tuple(bands.shape)} | {ldw:.2f} | ConvTranspose2d({2 * c}, {c}, 2, 2) | {conv:.2f} | {ldw / conv:.2f}x | "
        f"{faults[0]:.0f} / {faults[1]:.0f} |"
    )


if __name__ == "__main__":
    main()
