"""``LDWPool2d`` and its paired ``LDWUnpool2d``: thin modules over the functional core."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .capture import _static_size
from .constraints import orthogonal_terms, paper_terms, pr_error
from .filters import WaveletSpec, check_constraint, initial_filters
from .functional import ldw_analysis, ldw_synthesis
from .lattice import lattice_angles, lattice_filters

__all__ = ["LDWPool2d", "LDWUnpool2d", "wavelet_loss"]


class LDWPool2d(nn.Module):
    """Learnable discrete wavelet pooling (Eqs. 3-8): ``C`` channels to ``4C`` at half size.

    Args:
        channels: expected input channels ``C``; checked in ``forward`` when given.
        wavelet: initial filters: a PyWavelets orthogonal wavelet name (``"haar"``,
            ``"db2"``, ...), ``"random"`` (filters drawn to satisfy ``constraint``,
            the paper's "pretrain" option, table 6) or a ``(low, high)`` pair.
        kernel_size: filter length ``K``; needed for ``"random"``.
        constraint: ``"paper"`` (Eqs. 9-13), ``"orthogonal"`` (orthogonal-PR conditions,
            see :mod:`ldwseg.pooling.constraints`) or ``"lattice"`` (filters
            parametrised by a paraunitary lattice: always orthogonal, loss 0).
        trainable: learn the filters (default) or keep them fixed at the initial wavelet (a
            fixed DWT): the filters, or the lattice angles, are then parameters with
            ``requires_grad=False``, so the state dict has the same keys either way.
        seed: seed for ``wavelet="random"``.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, 4C, ceil(H/2), ceil(W/2))``, blocks ``[LL | LH | HL | HH]``.

    Note:
        Under ``torch.autocast`` (bf16 or fp16) the pool runs in float32 and returns float32,
        as normalisation layers do, so a pool and its reverse pool reconstruct their input to
        float32 rounding. Channels-last input gives channels-last output. With ``K = 2`` and
        trainable filters the pool keeps its output for the filter gradient, so the output
        must not be modified in place before backward (autograd raises if it is). The pool
        does not change the process's memory allocator; a training script may opt in to
        :func:`~ldwseg.pooling.allocator.keep_freed_memory`.

    Example:
        >>> pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
        >>> unpool = LDWUnpool2d(pool)
        >>> x = torch.randn(2, 3, 33, 50)
        >>> torch.allclose(unpool(pool(x), output_size=x.shape[-2:]), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        wavelet: WaveletSpec = "haar",
        kernel_size: int | None = None,
        constraint: str = "orthogonal",
        trainable: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.constraint = check_constraint(constraint)
        low, high = initial_filters(wavelet, kernel_size=kernel_size, constraint=constraint, seed=seed)
        self.wavelet_name = wavelet if isinstance(wavelet, str) else "custom"
        self.kernel_size = int(low.size)
        self.register_buffer("initial_low", torch.tensor(low, dtype=torch.float32))
        self.register_buffer("initial_high", torch.tensor(high, dtype=torch.float32))
        if constraint == "lattice":
            angles, sign = lattice_angles(low, high)
            self.angles = nn.Parameter(torch.tensor(angles, dtype=torch.float32), requires_grad=trainable)
            self.register_buffer("sign", torch.tensor(sign, dtype=torch.float32))
        else:
            self.low = nn.Parameter(torch.tensor(low, dtype=torch.float32), requires_grad=trainable)
            self.high = nn.Parameter(torch.tensor(high, dtype=torch.float32), requires_grad=trainable)

    def filters(self) -> tuple[Tensor, Tensor]:
        """The current ``(W^L, W^H)``; differentiable in the module's parameters."""
        if self.constraint == "lattice":
            return lattice_filters(self.angles, self.sign)
        return self.low, self.high

    def forward(self, x: Tensor) -> Tensor:
        if self.channels is not None and x.dim() == 4 and _static_size(x.shape[1]) != self.channels:
            raise ValueError(f"LDWPool2d was built for {self.channels} channels, got input of shape {tuple(x.shape)}")
        return ldw_analysis(x, *self.filters())

    def constraint_terms(self) -> dict[str, Tensor]:
        """The named terms of this pool's constraint loss (lattice: none, it is exact)."""
        low, high = self.filters()
        if self.constraint == "paper":
            return paper_terms(low, high)
        if self.constraint == "orthogonal":
            return orthogonal_terms(low, high)
        return {}

    def paper_terms(self) -> dict[str, Tensor]:
        """Eqs. 9-12 for the current filters, whatever constraint is trained."""
        return paper_terms(*self.filters())

    def wavelet_loss(self) -> Tensor:
        """Sum of :meth:`constraint_terms` (Eq. 13 for ``constraint="paper"``)."""
        terms = self.constraint_terms()
        if not terms:
            low, _ = self.filters()
            return low.new_zeros(())
        return torch.stack(list(terms.values())).sum()

    def pr_error(self) -> float:
        """Distance of the current filters from an orthogonal PR bank (0 when exact)."""
        return pr_error(*self.filters())

    def extra_repr(self) -> str:
        parts = [] if self.channels is None else [str(self.channels)]
        parts += [
            f"wavelet={self.wavelet_name!r}",
            f"kernel_size={self.kernel_size}",
            f"constraint={self.constraint!r}",
        ]
        if not any(p.requires_grad for p in self.parameters()):
            parts.append("trainable=False")
        return ", ".join(parts)


class LDWUnpool2d(nn.Module):
    """Reverse LDW pooling, paired with one :class:`LDWPool2d` whose filters it shares.

    The filters are tied, not copied: training either module updates both. For an
    orthogonal PR bank ``unpool(pool(x), output_size=x.shape[-2:]) == x``.

    Shape:
        - Input: ``(N, 4C, h, w)`` with blocks ``[LL | LH | HL | HH]``.
        - Output: ``(N, C, 2h, 2w)``, or ``output_size`` (each side ``2h`` or ``2h - 1``).
    """

    def __init__(self, pool: LDWPool2d) -> None:
        super().__init__()
        if not isinstance(pool, LDWPool2d):
            raise TypeError(f"LDWUnpool2d needs the LDWPool2d it reverses, got {type(pool).__name__}")
        self.pool = pool

    def forward(self, y: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        return ldw_synthesis(y, *self.pool.filters(), output_size=output_size)


def wavelet_loss(model: nn.Module) -> Tensor:
    """Sum of ``wavelet_loss()`` over every :class:`LDWPool2d` in ``model`` (each counted once)."""
    losses = [m.wavelet_loss() for m in model.modules() if isinstance(m, LDWPool2d)]
    if not losses:
        param = next(model.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return torch.stack(losses).sum()
