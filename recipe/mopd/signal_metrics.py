"""Does the teacher's signal rank a group's rollouts the way the verifier does?

Diagnostics only: per prompt group, compare a per-rollout teacher score s (e.g. the mean teacher minus
student log-prob over response tokens) with the verifier rewards r, average over groups holding both a
success and a failure, and bootstrap prompt-level confidence intervals (the paper's teacher-signal table).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import numpy as np

METRICS = ("auroc", "spearman", "kendall_tau", "pairwise_accuracy")


def _as_vector(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    # A NaN compares false both ways and would silently count as a tie.
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {values!r}")
    return arr


def _pair(scores: Sequence[float], other: Sequence[float], other_name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _as_vector(scores, "scores")
    o = _as_vector(other, other_name)
    if s.shape != o.shape:
        raise ValueError(f"scores and {other_name} differ in length: {len(s)} vs {len(o)}")
    return s, o


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    arr = _as_vector(values, "values")
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse]


def _pair_signs(x: np.ndarray) -> np.ndarray:
    """sign(x_i - x_j) for the pairs i < j."""
    i, j = np.triu_indices(len(x), k=1)
    return np.sign(x[i] - x[j])


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(s_pos > s_neg) + 0.5 P(s_pos == s_neg); None unless both classes are present."""
    s, y = _pair(scores, labels, "labels")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0/1 or bool, got {labels!r}")
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # Mann-Whitney U from average ranks counts ties as one half.
    rank_sum = average_ranks(s)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(scores: Sequence[float], rewards: Sequence[float]) -> float | None:
    """Pearson correlation of average ranks; None when either side is constant or n < 2."""
    s, r = _pair(scores, rewards, "rewards")
    if len(s) < 2:
        return None
    rs, rr = average_ranks(s), average_ranks(r)
    rs, rr = rs - rs.mean(), rr - rr.mean()
    denom = math.sqrt(float((rs * rs).sum()) * float((rr * rr).sum()))
    if denom == 0.0:
        return None
    return float((rs * rr).sum() / denom)


def kendall_tau(
    scores: Sequence[float], rewards: Sequence[float], variant: str = "skip_ties"
) -> float | None:
    """Rank agreement over pairs of rollouts.

    variant="skip_ties" (default, as in the released MOPD analysis): (C - D) / (C + D) over the pairs
    tied in neither s nor r, i.e. Goodman-Kruskal gamma; None when no such pair exists.
    variant="b": Kendall tau-b, (C - D) / sqrt((n0 - n_s)(n0 - n_r)) with n_s, n_r the pairs tied in s and
    in r (scipy.stats.kendalltau's default); None when either side is constant.
    With binary rewards most pairs tie in r, so tau-b is much smaller in magnitude than the default.
    """
    s, r = _pair(scores, rewards, "rewards")
    ds, dr = _pair_signs(s), _pair_signs(r)
    product = ds * dr
    concordant, discordant = int((product > 0).sum()), int((product < 0).sum())
    if variant == "skip_ties":
        if concordant + discordant == 0:
            return None
        return (concordant - discordant) / (concordant + discordant)
    if variant == "b":
        n0 = len(ds)
        denom = math.sqrt(float(n0 - (ds == 0).sum()) * float(n0 - (dr == 0).sum()))
        if denom == 0.0:
            return None
        return (concordant - discordant) / denom
    raise ValueError(f"unknown Kendall variant {variant!r}; expected 'skip_ties' or 'b'")


def pairwise_accuracy(scores: Sequence[float], rewards: Sequence[float]) -> float | None:
    """Over pairs with r_i != r_j: the fraction ordered by s as by r, a tie in s counting one half.

    The released analysis counted ties in s as wrong; one half keeps a constant teacher at chance.
    """
    s, r = _pair(scores, rewards, "rewards")
    ds, dr = _pair_signs(s), _pair_signs(r)
    decided = dr != 0
    if not decided.any():
        return None
    credit = np.where(ds[decided] == 0, 0.5, (ds[decided] == dr[decided]).astype(np.float64))
    return float(credit.mean())


def per_group_signal_metrics(
    groups: Iterable[tuple[Sequence[float], Sequence[float]]], success_threshold: float
) -> list[dict[str, float | None]]:
    """Metrics of every group that has both a success (reward >= threshold) and a failure."""
    out = []
    for scores, rewards in groups:
        s, r = _pair(scores, rewards, "rewards")
        labels = r >= success_threshold
        if labels.all() or not labels.any():
            continue
        out.append(
            {
                "auroc": auroc(s, labels),
                "spearman": spearman(s, r),
                "kendall_tau": kendall_tau(s, r),
                "pairwise_accuracy": pairwise_accuracy(s, r),
            }
        )
    return out


def group_signal_metrics(
    groups: Iterable[tuple[Sequence[float], Sequence[float]]], success_threshold: float
) -> dict[str, float | int | None]:
    """Each metric averaged over the mixed groups, plus `num_groups` and `num_mixed_groups`.

    A group where a metric is undefined (e.g. Spearman with constant scores) is left out of that
    metric's mean rather than counted as 0; a metric is None when no group defines it.
    """
    groups = list(groups)
    per_group = per_group_signal_metrics(groups, success_threshold)
    result: dict[str, float | int | None] = {}
    for name in METRICS:
        values = [g[name] for g in per_group if g[name] is not None]
        result[name] = float(np.mean(values)) if values else None
    result["num_groups"] = len(groups)
    result["num_mixed_groups"] = len(per_group)
    return result


def bootstrap_ci(
    per_prompt_values: Sequence[float | None],
    num_resamples: int = 2000,
    seed: int = 12345,
    alpha: float = 0.05,
) -> tuple[float | None, float | None, float | None]:
    """(mean, lo, hi): percentile bootstrap over prompts; None values are dropped first.

    Resamples are drawn with `random.Random(seed).randrange` in the released analysis' order and the
    bounds use linear-interpolation percentiles, so the same per-prompt values give the same interval.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, int) or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive int, got {num_resamples!r}")
    values = _as_vector([v for v in per_prompt_values if v is not None], "per_prompt_values")
    n = len(values)
    if n == 0:
        return None, None, None
    rng = random.Random(seed)
    draws = np.fromiter((rng.randrange(n) for _ in range(n * num_resamples)), dtype=np.int64)
    means = values[draws.reshape(num_resamples, n)].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(values.mean()), float(lo), float(hi)
