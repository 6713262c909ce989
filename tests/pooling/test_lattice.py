"""The paraunitary lattice: exact factorisation of named wavelets, PR for any angles."""

import math

import pytest
import pywt
import torch
from torch.testing import assert_close

from ldwseg.pooling import pr_error
from ldwseg.pooling.lattice import lattice_angles, lattice_filters


@pytest.mark.parametrize("name", ["haar", "db2", "db4", "sym4", "coif1", "db8"])
def test_factorisation_reproduces_pywt_filters(name):
    w = pywt.Wavelet(name)
    angles, sign = lattice_angles(w.rec_lo, w.rec_hi)
    low, high = lattice_filters(torch.from_numpy(angles), sign)
    assert_close(low, torch.tensor(w.rec_lo, dtype=torch.float64), atol=1e-10, rtol=0)
    assert_close(high, torch.tensor(w.rec_hi, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_any_angles_give_an_orthogonal_bank_with_unit_dc(m):
    angles = torch.empty(m - 1, dtype=torch.float64).uniform_(-math.pi, math.pi)
    low, high = lattice_filters(angles)
    assert low.shape == (2 * m,)
    assert pr_error(low, high) <= 1e-12
    assert_close(low.sum(), torch.tensor(math.sqrt(2), dtype=torch.float64))
    assert_close(high.sum(), torch.tensor(0.0, dtype=torch.float64), atol=1e-12, rtol=0)


def test_gradients_reach_the_angles():
    angles = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: lattice_filters(a), (angles,))
