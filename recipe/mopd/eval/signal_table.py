"""The teacher-signal table: per prompt group, how well teacher scores rank rollouts by verifier reward,
averaged over groups with prompt-level bootstrap CIs, per context variant and sample set.

Sample sets (mopd-method note §9):
- `effective`: every group, restricted to its effective rollouts (those whose context holds every
  section the variant asks for). A metric enters a group's mean only where it is defined there, e.g.
  Spearman needs rewards that differ, AUROC a success and a failure.
- `both_present`: the groups whose effective rollouts include at least one success and one failure
  (the paper's Table 7). With 0/1 rewards every metric is defined exactly on these groups, so the two
  sets agree; they differ for graded rewards (e.g. partial test credit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recipe.mopd.signal_metrics import METRICS, auroc, bootstrap_ci, kendall_tau, pairwise_accuracy, spearman

SAMPLE_SETS = ("effective", "both_present")


@dataclass
class ScoredGroup:
    """One prompt group under one variant: teacher scores and rewards of its effective rollouts."""

    uid: str
    teacher_scores: list[float]
    rewards: list[float]


def group_metrics(
    teacher_scores: Sequence[float], rewards: Sequence[float], success_threshold: float
) -> dict:
    labels = [r >= success_threshold for r in rewards]
    return {
        "auroc": auroc(teacher_scores, labels),
        "spearman": spearman(teacher_scores, rewards),
        "kendall_tau": kendall_tau(teacher_scores, rewards),
        "pairwise_accuracy": pairwise_accuracy(teacher_scores, rewards),
    }


def both_present(rewards: Sequence[float], success_threshold: float) -> bool:
    labels = [r >= success_threshold for r in rewards]
    return any(labels) and not all(labels)


def signal_table(
    groups_by_variant: dict[str, list[ScoredGroup]],
    success_threshold: float = 1.0,
    num_resamples: int = 2000,
    seed: int = 12345,
) -> list[dict]:
    """Rows {variant, sample_set, metric, mean, ci_low, ci_high, num_groups, num_rollouts}.

    `num_groups` counts the groups where the metric is defined (the bootstrap's sample size) and
    `num_rollouts` the effective rollouts of those groups.
    """
    rows = []
    for variant, groups in groups_by_variant.items():
        in_set = {
            "effective": [g for g in groups if g.rewards],
            "both_present": [g for g in groups if both_present(g.rewards, success_threshold)],
        }
        for sample_set in SAMPLE_SETS:
            per_group = [
                (g, group_metrics(g.teacher_scores, g.rewards, success_threshold)) for g in in_set[sample_set]
            ]
            for metric in METRICS:
                defined = [(g, m[metric]) for g, m in per_group if m[metric] is not None]
                mean, low, high = bootstrap_ci([value for _, value in defined], num_resamples, seed)
                rows.append(
                    {
                        "variant": variant,
                        "sample_set": sample_set,
                        "metric": metric,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "num_groups": len(defined),
                        "num_rollouts": sum(len(g.rewards) for g, _ in defined),
                    }
                )
    return rows
