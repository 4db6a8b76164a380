"""The teacher-signal table: sample sets, metric definitions per group, bootstrap rows."""

import pytest

from recipe.mopd.eval.signal_table import (
    SAMPLE_SETS,
    ScoredGroup,
    both_present,
    group_metrics,
    matched_groups,
    paired_differences,
    signal_table,
)
from recipe.mopd.signal_metrics import METRICS


def rows_by_key(table):
    return {(r["variant"], r["sample_set"], r["metric"]): r for r in table}


def test_perfect_and_inverted_teachers():
    groups = [ScoredGroup("a", [0.9, 0.1, 0.2], [1.0, 0.0, 0.0]), ScoredGroup("b", [0.5, 0.7], [0.0, 1.0])]
    inverted = [ScoredGroup(g.uid, [-s for s in g.teacher_scores], g.rewards) for g in groups]
    table = rows_by_key(signal_table({"good": groups, "bad": inverted}, num_resamples=50))
    assert len(table) == 2 * len(SAMPLE_SETS) * len(METRICS)
    # Spearman of a perfect ranking stays below 1 when rewards tie: sqrt(3)/2 for [1, 0, 0]
    best = {"auroc": 1.0, "pairwise_accuracy": 1.0, "kendall_tau": 1.0, "spearman": (3**0.5 / 2 + 1) / 2}
    worst = {"auroc": 0.0, "pairwise_accuracy": 0.0, "kendall_tau": -1.0, "spearman": -best["spearman"]}
    for metric in METRICS:
        good = table[("good", "both_present", metric)]
        assert good["mean"] == pytest.approx(best[metric])
        assert good["num_groups"] == 2 and good["num_rollouts"] == 5
        assert table[("bad", "both_present", metric)]["mean"] == pytest.approx(worst[metric])
    assert table[("good", "both_present", "auroc")]["ci_low"] == 1.0


def test_graded_rewards_separate_the_two_sample_sets():
    groups = [
        ScoredGroup("mixed", [0.9, 0.1], [1.0, 0.0]),
        # no success, but rewards still differ: rank metrics are defined, AUROC is not
        ScoredGroup("partial", [0.1, 0.9, 0.5], [0.5, 0.0, 0.0]),
        ScoredGroup("all_fail", [0.3, 0.4], [0.0, 0.0]),
        ScoredGroup("no_effective_rollouts", [], []),
    ]
    table = rows_by_key(signal_table({"v": groups}, num_resamples=50))
    assert table[("v", "effective", "auroc")]["num_groups"] == 1
    assert table[("v", "effective", "spearman")]["num_groups"] == 2
    assert table[("v", "effective", "spearman")]["num_rollouts"] == 5
    assert table[("v", "effective", "pairwise_accuracy")]["mean"] == pytest.approx(0.5)  # (1 + 0) / 2
    for metric in METRICS:
        row = table[("v", "both_present", metric)]
        assert row["num_groups"] == 1 and row["mean"] == 1.0


def test_a_variant_without_defined_metrics_reports_none():
    table = signal_table({"v": [ScoredGroup("g", [0.1, 0.2], [1.0, 1.0])]}, num_resamples=10)
    for row in table:
        assert row["mean"] is None and row["ci_low"] is None and row["num_groups"] == 0


def test_ci_brackets_the_mean_and_is_reproducible():
    groups = [
        ScoredGroup(str(i), [float(i % 3), 1.0, 0.5], [1.0, 0.0, 1.0 if i % 2 else 0.0]) for i in range(12)
    ]
    first = signal_table({"v": groups}, num_resamples=200, seed=7)
    assert first == signal_table({"v": groups}, num_resamples=200, seed=7)
    for row in first:
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert any(row["ci_low"] < row["ci_high"] for row in first)


def test_group_helpers_use_the_success_threshold():
    assert both_present([0.5, 1.0], 1.0) and not both_present([0.5, 0.9], 1.0)
    assert both_present([0.5, 0.9], 0.5) is False
    assert group_metrics([0.2, 0.8], [0.5, 0.9], success_threshold=0.9)["auroc"] == 1.0
    assert group_metrics([0.2, 0.8], [0.5, 0.9], success_threshold=1.0)["auroc"] is None


def test_matched_set_scores_every_variant_on_the_same_rollouts():
    # Group "a": rollout 3 is not effective under 2S; rollout 0 is not under 1F. Group "b" is mixed
    # only under "none" (its one success is not effective under 2S), so it drops out of the matched set.
    groups = {
        "none": [
            ScoredGroup("a", [0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 1.0, 0.0]),
            ScoredGroup("b", [0.5, 0.6], [1.0, 0.0]),
        ],
        "2S": [
            ScoredGroup("a", [0.9, 0.8, 0.7], [1.0, 0.0, 1.0], [0, 1, 2]),
            ScoredGroup("b", [0.6], [0.0], [1]),
        ],
        "1F": [
            ScoredGroup("a", [0.0, 0.5, 0.2], [0.0, 1.0, 0.0], [1, 2, 3]),
            ScoredGroup("b", [0.5, 0.6], [1.0, 0.0], [0, 1]),
        ],
    }
    matched = matched_groups(groups)
    for variant, kept in matched.items():
        assert [(g.uid, g.indices, g.rewards) for g in kept] == [("a", [1, 2], [0.0, 1.0])], variant
    assert [g.teacher_scores for g in matched["2S"]] == [[0.8, 0.7]]
    table = rows_by_key(signal_table(groups, num_resamples=50))
    assert table[("none", "matched", "auroc")]["mean"] == 1.0  # 0.3 > 0.2
    assert table[("2S", "matched", "auroc")]["mean"] == 0.0  # 0.7 < 0.8
    assert table[("none", "both_present", "auroc")]["num_groups"] == 2
    assert {table[(v, "matched", "auroc")]["num_groups"] for v in groups} == {1}
    assert table[("1F", "matched", "auroc")]["num_rollouts"] == 2


def test_matched_set_rejects_rollouts_whose_rewards_disagree():
    groups = {
        "none": [ScoredGroup("a", [0.1, 0.2], [1.0, 0.0])],
        "1S": [ScoredGroup("a", [0.1, 0.2], [0.0, 1.0])],
    }
    with pytest.raises(ValueError, match="different rewards"):
        matched_groups(groups)


def test_paired_differences_cancel_the_shared_group_effect():
    # The variant beats "none" by exactly 0.25 AUROC in every group, while the groups themselves range
    # from AUROC 0.25 to 1.0: the paired CI is a point, the unpaired CIs are wide and overlap.
    none = [ScoredGroup(str(g), _auroc_scores(g % 4), [1.0, 1.0, 0.0, 0.0]) for g in range(8)]
    better = [ScoredGroup(str(g), _auroc_scores(g % 4 + 1), [1.0, 1.0, 0.0, 0.0]) for g in range(8)]
    rows = {r["metric"]: r for r in paired_differences({"none": none, "2S1F": better}, num_resamples=500)}
    auroc_row = rows["auroc"]
    assert (
        auroc_row["variant"] == "2S1F" and auroc_row["reference"] == "none" and auroc_row["num_groups"] == 8
    )
    assert auroc_row["mean"] == pytest.approx(0.25)
    assert auroc_row["ci_low"] == pytest.approx(0.25) and auroc_row["ci_high"] == pytest.approx(0.25)
    table = rows_by_key(signal_table({"none": none, "2S1F": better}, num_resamples=500))
    assert table[("none", "matched", "auroc")]["ci_high"] > table[("2S1F", "matched", "auroc")]["ci_low"]


def _auroc_scores(ordered_pairs: int) -> list[float]:
    """Scores of [success, success, failure, failure] whose AUROC is ordered_pairs / 4 (0..4)."""
    return {
        0: [0.0, 0.0, 1.0, 1.0],
        1: [0.5, 0.0, 0.25, 1.0],
        2: [1.0, 0.0, 0.5, 0.5],
        3: [1.0, 0.5, 0.25, 0.75],
        4: [1.0, 1.0, 0.0, 0.0],
    }[ordered_pairs]


def test_paired_differences_need_the_reference():
    with pytest.raises(ValueError, match="reference variant 'none'"):
        paired_differences({"1S": [ScoredGroup("a", [0.1, 0.2], [1.0, 0.0])]})
