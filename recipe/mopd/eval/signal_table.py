"""The teacher-signal table: per prompt group, how well teacher scores rank rollouts by verifier reward,
averaged over groups with prompt-level bootstrap CIs, per context variant and sample set.

Sample sets (mopd-method note §9):
- `effective`: every group, restricted to its effective rollouts (those whose context holds every
  section the variant asks for). A metric enters a group's mean only where it is defined there, e.g.
  Spearman needs rewards that differ, AUROC a success and a failure.
- `both_present`: the groups whose effective rollouts include at least one success and one failure
  (the paper's Table 7). With 0/1 rewards every metric is defined exactly on these groups, so the two
  sets agree; they differ for graded rewards (e.g. partial test credit).
- `matched`: every variant on the same rollouts: per group, the rollouts effective under *all* the
  variants in the table, and only the groups where those include a success and a failure. The two sets
  above let each variant pick its own groups (2S needs >= 3 successes, 1F a failure peer), which
  confounds a comparison between variants with the groups' difficulty; this one does not.

`paired_differences` bootstraps each variant's difference to a reference variant on the matched set,
resampling groups jointly (a paired bootstrap), so the shared group-to-group variance cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from recipe.mopd.signal_metrics import METRICS, auroc, bootstrap_ci, kendall_tau, pairwise_accuracy, spearman

SAMPLE_SETS = ("effective", "both_present", "matched")


@dataclass
class ScoredGroup:
    """One prompt group under one variant: teacher scores and rewards of its effective rollouts."""

    uid: str
    teacher_scores: list[float]
    rewards: list[float]
    # Position of each effective rollout within its group; empty means 0, 1, ... in order.
    indices: list[int] = field(default_factory=list)

    def positions(self) -> list[int]:
        return self.indices or list(range(len(self.rewards)))


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


def matched_groups(
    groups_by_variant: dict[str, list[ScoredGroup]], success_threshold: float = 1.0
) -> dict[str, list[ScoredGroup]]:
    """The `matched` set: each variant's groups cut to the rollouts effective under every variant, kept
    where those hold a success and a failure; same uids, same rollouts and same order for every variant.

    Raises ValueError when two variants give one rollout different rewards (they are not the same
    rollouts then).
    """
    by_uid = {variant: {g.uid: g for g in groups} for variant, groups in groups_by_variant.items()}
    if not by_uid:
        return {}
    common_uids = [uid for uid in next(iter(by_uid.values())) if all(uid in v for v in by_uid.values())]
    matched: dict[str, list[ScoredGroup]] = {variant: [] for variant in by_uid}
    for uid in common_uids:
        per_variant = {
            variant: dict(zip(groups[uid].positions(), zip(groups[uid].teacher_scores, groups[uid].rewards)))
            for variant, groups in by_uid.items()
        }
        shared = sorted(set.intersection(*(set(rollouts) for rollouts in per_variant.values())))
        rewards = [next(iter(per_variant.values()))[i][1] for i in shared]
        for variant, rollouts in per_variant.items():
            if [rollouts[i][1] for i in shared] != rewards:
                raise ValueError(f"group {uid!r}: variant {variant!r} gives its rollouts different rewards")
        if not both_present(rewards, success_threshold):
            continue
        for variant, rollouts in per_variant.items():
            matched[variant].append(ScoredGroup(uid, [rollouts[i][0] for i in shared], rewards, shared))
    return matched


def paired_differences(
    groups_by_variant: dict[str, list[ScoredGroup]],
    reference: str = "none",
    success_threshold: float = 1.0,
    num_resamples: int = 2000,
    seed: int = 12345,
) -> list[dict]:
    """Rows {variant, reference, metric, mean, ci_low, ci_high, num_groups}: the mean over matched groups
    of (variant's metric - reference's metric) with a paired prompt-level bootstrap CI, for every variant
    but the reference. A CI excluding 0 is a difference the resampling of groups does not explain.

    Raises ValueError when `reference` is not among the variants.
    """
    if reference not in groups_by_variant:
        raise ValueError(f"reference variant {reference!r} not among {list(groups_by_variant)}")
    matched = matched_groups(groups_by_variant, success_threshold)

    def per_group(variant: str) -> list[dict]:
        return [group_metrics(g.teacher_scores, g.rewards, success_threshold) for g in matched[variant]]

    base = per_group(reference)
    rows = []
    for variant in groups_by_variant:
        if variant == reference:
            continue
        other = per_group(variant)
        for metric in METRICS:
            differences = [
                o[metric] - b[metric]
                for o, b in zip(other, base)
                if o[metric] is not None and b[metric] is not None
            ]
            mean, low, high = bootstrap_ci(differences, num_resamples, seed)
            rows.append(
                {
                    "variant": variant,
                    "reference": reference,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "num_groups": len(differences),
                }
            )
    return rows


def signal_table(
    groups_by_variant: dict[str, list[ScoredGroup]],
    success_threshold: float = 1.0,
    num_resamples: int = 2000,
    seed: int = 12345,
) -> list[dict]:
    """Rows {variant, sample_set, metric, mean, ci_low, ci_high, num_groups, num_rollouts}.

    `num_groups` counts the groups where the metric is defined (the bootstrap's sample size) and
    `num_rollouts` the effective rollouts of those groups (for `matched`, the shared rollouts).
    """
    rows = []
    matched = matched_groups(groups_by_variant, success_threshold)
    for variant, groups in groups_by_variant.items():
        in_set = {
            "effective": [g for g in groups if g.rewards],
            "both_present": [g for g in groups if both_present(g.rewards, success_threshold)],
            "matched": matched[variant],
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
