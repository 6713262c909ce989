"""Constraint losses: the paper's Eqs. 9-13 and the orthogonal-PR conditions."""

import math

import pytest
import pywt
import torch
from torch.testing import assert_close

from ldwseg.pooling import orthogonal_terms, orthogonal_wavelets, paper_terms, pr_error
from ldwseg.pooling.constraints import shift_correlations
from ldwseg.pooling.filters import initial_filters

AUTHORS_LOW = torch.tensor([-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025], dtype=torch.float64)
AUTHORS_HIGH = AUTHORS_LOW * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)


def named(name):
    w = pywt.Wavelet(name)
    return torch.tensor(w.rec_lo, dtype=torch.float64), torch.tensor(w.rec_hi, dtype=torch.float64)


def total(terms):
    return sum(float(v) for v in terms.values())


def test_paper_loss_is_zero_for_authors_k5_filter():
    assert total(paper_terms(AUTHORS_LOW, AUTHORS_HIGH)) <= 1e-10


def test_paper_loss_of_orthonormal_haar_is_the_high_pass_symmetry_term():
    terms = paper_terms(*named("haar"))
    assert_close(terms["sym"], torch.tensor(2.0, dtype=torch.float64))
    assert total(terms) == pytest.approx(2.0, abs=1e-12)


def test_paper_terms_by_hand_for_a_small_pair():
    low = torch.tensor([0.5, 0.5], dtype=torch.float64)  # the paper's Haar example
    high = torch.tensor([0.5, -0.5], dtype=torch.float64)
    terms = paper_terms(low, high)
    assert_close(terms["low"], torch.tensor((0.5 - 1) ** 2 + (1 - math.sqrt(2)) ** 2, dtype=torch.float64))
    assert_close(terms["high"], torch.tensor(0.25, dtype=torch.float64))
    assert_close(terms["reverse"], torch.tensor(1.0, dtype=torch.float64))
    assert_close(terms["sym"], torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("name", orthogonal_wavelets(max_length=16))
def test_orthogonal_loss_vanishes_on_every_pywt_orthogonal_wavelet(name):
    low, high = named(name)
    assert total(orthogonal_terms(low, high)) <= 1e-10
    assert pr_error(low, high) <= 1e-9


def test_orthogonal_wavelet_list_is_complete():
    names = set(orthogonal_wavelets(max_length=16))
    expected = {"haar"} | {f"db{n}" for n in range(1, 9)} | {f"sym{n}" for n in range(2, 9)} | {"coif1", "coif2"}
    assert names == expected


def test_authors_k5_pair_is_not_a_pr_bank():
    assert total(orthogonal_terms(AUTHORS_LOW, AUTHORS_HIGH)) > 0.1
    assert pr_error(AUTHORS_LOW, AUTHORS_HIGH) > 0.1


def test_shift_correlations_match_a_loop():
    a, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    got = shift_correlations(a, b)
    reach = 2
    expected = [sum(a[n] * b[n + 2 * k] for n in range(6) if 0 <= n + 2 * k < 6) for k in range(-reach, reach + 1)]
    assert_close(got, torch.stack(expected))


@pytest.mark.parametrize("k", [3, 5, 6, 8])
def test_random_paper_filters_satisfy_the_paper_constraint(k):
    low, high = initial_filters("random", kernel_size=k, constraint="paper", seed=k)
    assert total(paper_terms(torch.from_numpy(low), torch.from_numpy(high))) <= 1e-20


@pytest.mark.parametrize("constraint", ["orthogonal", "lattice"])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_random_orthogonal_filters_are_pr(constraint, k):
    low, high = initial_filters("random", kernel_size=k, constraint=constraint, seed=k)
    assert pr_error(torch.from_numpy(low), torch.from_numpy(high)) <= 1e-12


def test_random_draws_differ_by_seed():
    a, _ = initial_filters("random", kernel_size=6, constraint="orthogonal", seed=1)
    b, _ = initial_filters("random", kernel_size=6, constraint="orthogonal", seed=2)
    assert abs(a - b).max() > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wavelet": "random", "kernel_size": 2, "constraint": "paper"}, "no solution for kernel_size=2"),
        ({"wavelet": "random", "kernel_size": 5, "constraint": "orthogonal"}, "even length"),
        ({"wavelet": "random"}, "needs kernel_size"),
        ({"wavelet": "nope"}, "unknown wavelet 'nope'"),
        ({"wavelet": "bior2.2"}, "biorthogonal"),
        ({"wavelet": "db2", "kernel_size": 6}, "does not match"),
        ({"wavelet": "haar", "constraint": "soft"}, "choose one of paper, orthogonal, lattice"),
        ({"wavelet": ([1.0, 0.0], [0.0, 1.0, 0.0])}, "equal length"),
        ({"wavelet": ([0.5, 0.5], [0.5, -0.5]), "constraint": "lattice"}, "orthogonal perfect-reconstruction"),
    ],
)
def test_filter_errors(kwargs, message):
    wavelet = kwargs.pop("wavelet")
    with pytest.raises(ValueError, match=message):
        initial_filters(wavelet, **kwargs)
