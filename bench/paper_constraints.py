"""Measure what the paper's constraint loss (Eqs. 9-13) does and does not guarantee.

For each K, minimise L_wavelet alone with Adam from orthonormal initial filters (and
from random restarts), then report the minimum reached and the perfect-reconstruction
error of the minimiser. Also evaluates the paper's Haar example and the authors' K=5
filter. Usage: ``python bench/paper_constraints.py [--steps 4000]``.
"""

import argparse
import math

import pywt
import torch

from ldwseg.pooling import paper_terms, pr_error

STEPS = 4000  # Adam steps per minimisation; the losses have settled by then


def minimise(low: torch.Tensor, high: torch.Tensor, steps: int = STEPS) -> tuple[float, float]:
    low, high = low.clone().requires_grad_(), high.clone().requires_grad_()
    opt = torch.optim.Adam([low, high], lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(paper_terms(low, high).values())
        loss.backward()
        opt.step()
        sched.step()
    return float(sum(paper_terms(low.detach(), high.detach()).values())), pr_error(low, high)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=STEPS, help="Adam steps per minimisation.")
    steps = parser.parse_args(argv).steps
    torch.manual_seed(0)
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    terms = paper_terms(half, torch.tensor([0.5, -0.5], dtype=torch.float64))
    print(
        f"paper's Haar example (1/2, 1/2): sum of squares {float(half.square().sum()):.2f} (Eq. 2 asks 1); "
        f"L_wavelet = {float(sum(terms.values())):.4f}"
    )
    low = torch.tensor([-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025], dtype=torch.float64)
    high = low * torch.tensor([(-1.0) ** n for n in range(5)], dtype=torch.float64)
    print(
        f"authors' K=5 pair: L_wavelet = {float(sum(paper_terms(low, high).values())):.2e}, "
        f"PR error = {pr_error(low, high):.3f}"
    )
    for name in ("haar", "db2", "db3"):
        w = pywt.Wavelet(name)
        lo, hi = torch.tensor(w.rec_lo, dtype=torch.float64), torch.tensor(w.rec_hi, dtype=torch.float64)
        start = float(sum(paper_terms(lo, hi).values()))
        best = minimise(lo, hi, steps)
        restarts = [
            minimise(
                torch.randn(lo.shape[0], dtype=torch.float64) / math.sqrt(lo.shape[0]),
                torch.randn(lo.shape[0], dtype=torch.float64) / math.sqrt(lo.shape[0]),
                steps,
            )
            for _ in range(4)
        ]
        lowest = min([best] + restarts)
        print(
            f"K={lo.shape[0]} from {name}: L_wavelet {start:.4f} -> {best[0]:.4f} (PR error {best[1]:.3f}); "
            f"best of 4 random restarts {lowest[0]:.2e} (PR error {lowest[1]:.3f})"
        )


if __name__ == "__main__":
    main()
