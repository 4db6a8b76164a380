"""pass@k against brute-force enumeration of k-subsets, and Mean@k."""

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recipe.mopd.eval.passk import mean_at_k, mean_pass_at_k, pass_at_k, report_ks


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (the first c correct) holding at least one correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 10))
def test_matches_enumeration_of_all_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


@pytest.mark.parametrize("n,c,k", [(500, 3, 100), (1000, 500, 100), (1000, 1, 999), (2000, 1000, 1000)])
def test_large_n_matches_exact_binomials(n, c, k):
    # C(1000, 500) has 300 digits: the float product must agree with exact rational arithmetic.
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_edge_cases():
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 1, 8) == 1.0  # n - c < k: every k-subset contains the correct sample
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0


@pytest.mark.parametrize("n,c,k", [(4, 1, 5), (1, 0, 2)])
def test_fewer_samples_than_k_raises(n, c, k):
    with pytest.raises(ValueError, match="at least k samples"):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    "n,c,k,error",
    [
        (4, 5, 1, ValueError),
        (4, -1, 1, ValueError),
        (0, 0, 1, ValueError),
        (4, 1, 0, ValueError),
        (4.0, 1, 1, TypeError),
        (4, True, 1, TypeError),
        (4, 1, 1.5, TypeError),
    ],
)
def test_invalid_arguments_raise(n, c, k, error):
    with pytest.raises(error):
        pass_at_k(n, c, k)


@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_1_is_accuracy_and_pass_grows_with_k_and_c(ncK):
    n, c, k = ncK
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    if k < n:
        assert pass_at_k(n, c, k + 1) >= value - 1e-12
    if c < n:
        assert pass_at_k(n, c + 1, k) >= value - 1e-12


def test_mean_at_k_averages_per_problem_accuracy():
    assert mean_at_k([8, 8, 4], [8, 0, 1]) == pytest.approx((1 + 0 + 0.25) / 3)
    assert mean_at_k([8, 8], [2, 6]) == mean_pass_at_k([8, 8], [2, 6], 1)


def test_mean_pass_at_k_averages_over_problems():
    assert mean_pass_at_k([4, 4], [0, 1], 4) == pytest.approx(0.5)
    assert mean_pass_at_k([4, 4], [0, 1], 2) == pytest.approx(0.5 * (1 - math.comb(3, 2) / math.comb(4, 2)))


@pytest.mark.parametrize("fn", [mean_at_k, lambda n, c: mean_pass_at_k(n, c, 1)])
def test_mean_rejects_empty_and_mismatched(fn):
    with pytest.raises(ValueError, match="no problems"):
        fn([], [])
    with pytest.raises(ValueError, match="correct counts"):
        fn([8, 8], [1])
    with pytest.raises(ValueError):
        fn([8], [9])


def test_report_ks():
    assert report_ks(8) == [1, 2, 4, 8]
    assert report_ks(6) == [1, 2, 4, 6]
    assert report_ks(1) == [1]
    with pytest.raises(ValueError):
        report_ks(0)
    with pytest.raises(TypeError):
        report_ks(2.0)
