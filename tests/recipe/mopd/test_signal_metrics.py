import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.mopd.signal_metrics import (
    auroc,
    average_ranks,
    bootstrap_ci,
    group_signal_metrics,
    kendall_tau,
    pairwise_accuracy,
    per_group_signal_metrics,
    spearman,
)

# scipy is not installed here; the expected values below are scipy's documented outputs or worked by hand.


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 10, 30, 20, 20]).tolist() == [1.5, 4.0, 1.5, 6.0, 4.0, 4.0]


def test_auroc_hand_computed_with_a_tie():
    # Positive scores {0.9, 0.5}, negative {0.1, 0.5}: three wins and one tie of four pairs.
    assert auroc([0.9, 0.1, 0.5, 0.5], [1, 0, 1, 0]) == pytest.approx(0.875)
    assert auroc([0.9, 0.1, 0.5, 0.5], [True, False, True, False]) == pytest.approx(0.875)
    assert auroc([1, 2, 3], [1, 0, 0]) == 0.0
    assert auroc([2, 2, 2], [1, 0, 1]) == 0.5


def test_spearman_matches_scipy_doc_example():
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).statistic
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_kendall_variants_on_scipy_doc_example():
    x, y = [12, 2, 1, 12, 2], [1, 4, 7, 1, 0]
    # scipy.stats.kendalltau(x, y).statistic (tau-b).
    assert kendall_tau(x, y, variant="b") == pytest.approx(-0.47140452079103173)
    # By hand: 2 concordant and 6 discordant pairs once the 2 tied pairs are skipped.
    assert kendall_tau(x, y) == pytest.approx(-0.5)


def test_pairwise_accuracy_hand_computed():
    # Pairs with different rewards: (0,1) right, (0,3) right, (1,2) right, (2,3) tied in s.
    assert pairwise_accuracy([3, 1, 2, 2], [1, 0, 1, 0]) == pytest.approx(0.875)
    assert pairwise_accuracy([0.1, 0.9], [1.0, 0.0]) == 0.0


@pytest.mark.parametrize(
    "fn, args",
    [
        (auroc, ([1, 2, 3], [1, 1, 1])),
        (auroc, ([1, 2, 3], [0, 0, 0])),
        (auroc, ([], [])),
        (spearman, ([1, 1, 1], [0, 1, 2])),
        (spearman, ([1, 2, 3], [1, 1, 1])),
        (spearman, ([1], [0])),
        (kendall_tau, ([1, 1, 1], [0, 1, 2])),
        (kendall_tau, ([1, 2, 3], [1, 1, 1])),
        (pairwise_accuracy, ([1, 2, 3], [1, 1, 1])),
        (pairwise_accuracy, ([], [])),
    ],
)
def test_undefined_metrics_are_none(fn, args):
    assert fn(*args) is None


def test_kendall_b_is_none_for_constant_input():
    assert kendall_tau([1, 1, 1], [0, 1, 2], variant="b") is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: spearman([1, 2], [1, 2, 3]), "length"),
        (lambda: auroc([1, float("nan")], [1, 0]), "finite"),
        (lambda: auroc([1, 2], [1, 2]), "0/1"),
        (lambda: kendall_tau([1, 2], [2, 1], variant="a"), "variant"),
        (lambda: pairwise_accuracy([[1, 2]], [[1, 2]]), "1-D"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------------------------------------
# Brute-force references written as the definitions read.


def _ref_ranks(x):
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and x[order[end + 1]] == x[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _ref_spearman(s, r):
    a, b = _ref_ranks(s), _ref_ranks(r)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return None if den == 0 else num / den


def _pairs(n):
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _sign(x):
    return (x > 0) - (x < 0)


def _ref_kendall(s, r, variant):
    c = d = ties_s = ties_r = 0
    for i, j in _pairs(len(s)):
        ps, pr = _sign(s[i] - s[j]), _sign(r[i] - r[j])
        ties_s += ps == 0
        ties_r += pr == 0
        c += ps * pr > 0
        d += ps * pr < 0
    if variant == "skip_ties":
        return None if c + d == 0 else (c - d) / (c + d)
    n0 = len(_pairs(len(s)))
    den = math.sqrt((n0 - ties_s) * (n0 - ties_r))
    return None if den == 0 else (c - d) / den


def _ref_auroc(s, y):
    pos = [a for a, b in zip(s, y) if b]
    neg = [a for a, b in zip(s, y) if not b]
    if not pos or not neg:
        return None
    return sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg) / (len(pos) * len(neg))


def _ref_pairwise(s, r):
    credit = [
        0.5 if s[i] == s[j] else float(_sign(s[i] - s[j]) == _sign(r[i] - r[j]))
        for i, j in _pairs(len(s))
        if r[i] != r[j]
    ]
    return sum(credit) / len(credit) if credit else None


def _close(a, b):
    return (a is None and b is None) or (
        a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12)
    )


# Small integer ranges make ties common, which is where these metrics differ.
_GROUPS = st.integers(0, 10).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-3, 3).map(float), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=300, deadline=None)
@given(_GROUPS)
def test_metrics_match_brute_force_definitions(group):
    s, r = group
    labels = [x >= 1.0 for x in r]
    assert _close(auroc(s, labels), _ref_auroc(s, labels))
    assert _close(spearman(s, r), _ref_spearman(s, r) if len(s) >= 2 else None)
    assert _close(kendall_tau(s, r), _ref_kendall(s, r, "skip_ties"))
    assert _close(kendall_tau(s, r, variant="b"), _ref_kendall(s, r, "b"))
    assert _close(pairwise_accuracy(s, r), _ref_pairwise(s, r))


@settings(max_examples=100, deadline=None)
@given(_GROUPS)
def test_metrics_are_invariant_to_monotone_transforms_and_flip_with_negation(group):
    s, r = group
    labels = [x >= 1.0 for x in r]
    warped = [math.exp(x) * 3 + 1 for x in s]
    for fn, other in ((spearman, r), (kendall_tau, r), (pairwise_accuracy, r), (auroc, labels)):
        assert _close(fn(warped, other), fn(s, other))
    a = auroc(s, labels)
    if a is not None:
        assert auroc([-x for x in s], labels) == pytest.approx(1 - a)
        assert pairwise_accuracy(s, labels) == pytest.approx(a)


def test_group_metrics_average_only_mixed_groups():
    groups = [
        ([0.9, 0.1, 0.5, 0.5], [1.0, 0.0, 1.0, 0.0]),  # mixed: auroc 0.875
        ([1.0, 2.0, 3.0], [1.0, 0.0, 0.0]),  # mixed, reversed: auroc 0
        ([1.0, 2.0], [1.0, 1.0]),  # all succeed: skipped
        ([1.0, 2.0], [0.0, 0.0]),  # all fail: skipped
        ([5.0, 5.0], [1.0, 0.0]),  # mixed, constant teacher: auroc 0.5, correlations undefined
    ]
    out = group_signal_metrics(groups, success_threshold=1.0)
    assert out["num_groups"] == 5 and out["num_mixed_groups"] == 3
    assert out["auroc"] == pytest.approx((0.875 + 0.0 + 0.5) / 3)
    assert out["pairwise_accuracy"] == pytest.approx((0.875 + 0.0 + 0.5) / 3)
    # Spearman and Kendall are undefined for the constant group and averaged over the other two.
    assert out["spearman"] == pytest.approx((spearman(*groups[0]) + -math.sqrt(3) / 2) / 2)
    assert out["kendall_tau"] == pytest.approx((kendall_tau(*groups[0]) + -1.0) / 2)
    assert len(per_group_signal_metrics(groups, 1.0)) == 3


def test_group_metrics_threshold_decides_success():
    groups = [([0.2, 0.8], [0.4, 0.6])]
    assert group_signal_metrics(groups, success_threshold=0.5)["auroc"] == 1.0
    none_mixed = group_signal_metrics(groups, success_threshold=1.0)
    assert none_mixed == {
        "auroc": None,
        "spearman": None,
        "kendall_tau": None,
        "pairwise_accuracy": None,
        "num_groups": 1,
        "num_mixed_groups": 0,
    }


# ----------------------------------------------------------------------------------------------------------
# Bootstrap


def _ref_bootstrap(values, num_resamples, seed, alpha):
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(num_resamples))

    def percentile(q):
        pos = q * (len(means) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    return percentile(alpha / 2), percentile(1 - alpha / 2)


def test_bootstrap_matches_the_reference_resampling():
    values = [0.5, 0.9, 0.7, 0.2, 1.0, 0.65, 0.8]
    mean, lo, hi = bootstrap_ci(values, num_resamples=500, seed=3, alpha=0.1)
    ref_lo, ref_hi = _ref_bootstrap(values, 500, 3, 0.1)
    assert mean == pytest.approx(np.mean(values))
    assert lo == pytest.approx(ref_lo) and hi == pytest.approx(ref_hi)
    assert lo < mean < hi


def test_bootstrap_defaults_are_reproducible_and_drop_none():
    values = [0.1 * k for k in range(20)]
    assert bootstrap_ci(values) == bootstrap_ci(values + [None])
    assert bootstrap_ci(values) != bootstrap_ci(values, seed=1)
    wide = bootstrap_ci(values[:5])
    narrow = bootstrap_ci(values * 20)
    assert narrow[2] - narrow[1] < wide[2] - wide[1]


def test_bootstrap_degenerate_inputs():
    assert bootstrap_ci([]) == (None, None, None)
    assert bootstrap_ci([None, None]) == (None, None, None)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    for kwargs in ({"alpha": 0.0}, {"alpha": 1.0}, {"num_resamples": 0}, {"num_resamples": 2.5}):
        with pytest.raises(ValueError):
            bootstrap_ci([0.1, 0.2], **kwargs)
