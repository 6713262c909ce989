"""The options of an LDW pool, shared by every network that has one, and their one check.

The UNet takes them as ``UNet(pool=PoolOptions(...))``, a converted CNN as
``convert(model, pool=PoolOptions(...))`` (or the same fields as keywords), and a flat
model description (a config's ``model`` section) carries their fields, which
:meth:`PoolOptions.of` collects. :func:`check_pool` is the one check of them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ...errors import ConfigError, check_choice
from ...pooling import CONSTRAINTS, initial_filters

__all__ = ["PoolOptions", "PoolSpec", "check_pool"]


class PoolSpec(Protocol):
    """The LDW pool fields of a flat model description (those of :class:`PoolOptions`)."""

    wavelet: str
    kernel_size: int | None
    constraint: str
    attention: bool
    learn_filters: bool


@dataclass(frozen=True)
class PoolOptions:
    """The options of every LDW pool of a UNet.

    Args:
        wavelet: initial filters: a PyWavelets orthogonal wavelet name, ``"random"`` or
            ``"noise"`` (see :func:`~ldwseg.pooling.initial_filters`).
        kernel_size: filter length ``K``; ``None`` takes the wavelet's own length.
        constraint: ``"paper"`` (Eqs. 9-13), ``"orthogonal"`` or ``"lattice"``
            (:data:`~ldwseg.pooling.CONSTRAINTS`).
        attention: energy attention (Eqs. 16-17) after each split (paper table 3); each
            down block says where it applies.
        learn_filters: learn the filters (and the lattice angles); ``False`` keeps the
            initial wavelet, a fixed DWT. The parameters stay in the state dict either way.

    :func:`check_pool` validates them.
    """

    wavelet: str = "haar"
    kernel_size: int | None = None
    constraint: str = "orthogonal"
    attention: bool = True
    learn_filters: bool = True

    @classmethod
    def of(cls, spec: PoolSpec) -> PoolOptions:
        """The pool options a flat model description (e.g. :class:`ldwseg.config.ModelConfig`) holds."""
        return cls(
            wavelet=spec.wavelet,
            kernel_size=spec.kernel_size,
            constraint=spec.constraint,
            attention=spec.attention,
            learn_filters=spec.learn_filters,
        )


def check_pool(pool: PoolOptions, *, prefix: str = "") -> None:
    """Raise a :class:`~ldwseg.errors.ConfigError` if an LDW pool cannot be built from ``pool``.

    ``prefix`` goes before each field's name in the messages (``"model."``).
    """
    check_choice(f"{prefix}constraint", pool.constraint, CONSTRAINTS)
    if pool.kernel_size is not None and pool.kernel_size < 2:
        raise ConfigError(
            f"{prefix}kernel_size must be >= 2 (or null for the wavelet's length), got {pool.kernel_size}"
        )
    try:
        initial_filters(pool.wavelet, kernel_size=pool.kernel_size, constraint=pool.constraint, seed=0)
    except ValueError as exc:
        raise ConfigError(f"{prefix}wavelet={pool.wavelet!r} cannot be used: {exc}") from None
