"""LDW pooling (K=2) against MaxPool2d(2) in a plain script: no CLI, no set-up call.

This is what a library user sees who imports ldwseg and calls ``LDWPool2d`` in a loop:
forward and backward (the gradients of the input and of the filters) on the CPU, the two
layers interleaved so that load on the machine hits both alike, the median of
``--repeats`` timed runs each after an untimed one. It prints the milliseconds and the
ratio LDW / MaxPool per shape; a ratio at most 1 means LDW pooling is no slower.

Usage: ``python bench/library_speed.py [--repeats 15] [--threads T]``
(``LDWSEG_MALLOC=default`` shows it with glibc's default allocator, see ldwseg.pooling.allocator).
"""

import argparse
import statistics
import time

import torch
from torch import nn

from ldwseg import LDWPool2d

SHAPES = ((8, 64, 128, 128), (8, 128, 64, 64), (8, 256, 32, 32), (8, 512, 16, 16))


def fwd_bwd(module: nn.Module, x: torch.Tensor):
    """A closure that runs ``module`` forward and backward on ``x``."""
    x = x.detach().requires_grad_()
    inputs = [x, *(p for p in module.parameters() if p.requires_grad)]
    grad_out = torch.randn_like(module(x))

    def run() -> None:
        torch.autograd.grad(module(x), inputs, grad_out)

    return run


def median_ms(runs: list, repeats: int) -> list[float]:
    """Median milliseconds of each closure, interleaved, each timed run after an untimed one."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, spent in zip(runs, times):
            run()
            start = time.perf_counter()
            run()
            spent.append(1000 * (time.perf_counter() - start))
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per layer and shape (the median is shown)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| shape | LDW fwd+bwd ms | MaxPool fwd+bwd ms | LDW / MaxPool |")
    print("|---|---|---|---|")
    for shape in SHAPES:
        x = torch.randn(shape)
        ldw, maxpool = median_ms([fwd_bwd(LDWPool2d(shape[1]), x), fwd_bwd(nn.MaxPool2d(2), x)], args.repeats)
        print(f"| {shape} | {ldw:.2f} | {maxpool:.2f} | {ldw / maxpool:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
