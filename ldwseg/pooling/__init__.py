"""The LDW pooling core: functional analysis/synthesis, modules and constraints."""

from .allocator import keep_freed_memory
from .attention import EnergyAttention
from .constraints import orthogonal_terms, paper_terms, pr_error
from .filters import CONSTRAINTS, initial_filters, orthogonal_wavelets
from .functional import ldw_analysis, ldw_synthesis
from .modules import LDWPool2d, LDWUnpool2d, wavelet_loss

__all__ = [
    "CONSTRAINTS",
    "EnergyAttention",
    "LDWPool2d",
    "LDWUnpool2d",
    "initial_filters",
    "keep_freed_memory",
    "ldw_analysis",
    "ldw_synthesis",
    "orthogonal_terms",
    "orthogonal_wavelets",
    "paper_terms",
    "pr_error",
    "wavelet_loss",
]
