"""mopd/ step metrics from per-sample diagnostics (pure)."""

import pytest

from recipe.mopd.diagnostics import mopd_step_metrics


def sample(
    uid, score, signal, success=0, failure=0, masked=False, feedback=False, truncated=False, tokens=30, new=50
):
    return {
        "uid": uid,
        "score": score,
        "signal": signal,
        "success_peers": success,
        "failure_peers": failure,
        "masked": masked,
        "used_feedback": feedback,
        "truncated": truncated,
        "teacher_prompt_tokens": tokens,
        "student_prompt_tokens": 10,
        "all_peers_prompt_tokens": 40,
        "teacher_sequence_tokens": 50,
        "teacher_new_prefix_tokens": new,
    }


def test_fractions_token_ratios_and_signal_over_mixed_groups_only():
    diagnostics = [
        # mixed group: the teacher prefers the success -> perfect ranking
        sample("a", 1.0, -0.1, success=1, failure=1),
        sample("a", 0.0, -2.0, success=1, failure=0, feedback=True),
        # all-failure group: no signal metric, masked sample
        sample("b", 0.0, -1.0, masked=True, tokens=10),
        sample("b", 0.0, -0.5, failure=1, truncated=True),
    ]
    metrics = mopd_step_metrics(diagnostics, success_threshold=1.0)
    assert metrics["mopd/with_success_peer_frac"] == 0.5
    assert metrics["mopd/with_failure_peer_frac"] == 0.5
    assert metrics["mopd/masked_frac"] == 0.25
    assert metrics["mopd/feedback_frac"] == 0.25
    assert metrics["mopd/truncated_frac"] == 0.25
    assert metrics["mopd/teacher_prompt_tokens/max"] == 30
    assert metrics["mopd/teacher_prompt_tokens_vs_student"] == pytest.approx(100 / 40)
    assert metrics["mopd/teacher_prompt_tokens_vs_all_peers"] == pytest.approx(100 / 160)
    assert metrics["mopd/signal/mixed_groups"] == 1
    assert metrics["mopd/signal/auroc"] == 1.0
    assert metrics["mopd/signal/pairwise_accuracy"] == 1.0


def test_signal_metrics_absent_without_mixed_groups_and_empty_input():
    metrics = mopd_step_metrics([sample("a", 1.0, 0.0), sample("a", 1.0, 1.0)], 1.0)
    assert metrics["mopd/signal/mixed_groups"] == 0
    assert "mopd/signal/auroc" not in metrics
    assert mopd_step_metrics([], 1.0) == {}


def test_teacher_prefill_unique_frac_is_new_prefix_tokens_over_the_naive_sum():
    # a group of three 50-token sequences where the second and third add 20 and 0 tokens to the trie
    diagnostics = [sample("a", 1.0, 0.0, new=50), sample("a", 0.0, 0.0, new=20), sample("a", 0.0, 0.0, new=0)]
    assert mopd_step_metrics(diagnostics, 1.0)["mopd/teacher_prefill_unique_frac"] == pytest.approx(70 / 150)


def test_teacher_prefix_cache_hit_frac_counts_only_servers_that_report_hits():
    # vLLM reported 30 and 45 cached tokens of two 50-token sequences; the third came from a server
    # without a prefix cache (hf) and neither counts nor dilutes the rate.
    diagnostics = [
        {**sample("a", 1.0, 0.0), "teacher_cached_tokens": 30},
        {**sample("a", 0.0, 0.0), "teacher_cached_tokens": 45},
        sample("b", 0.0, 0.0),
    ]
    assert mopd_step_metrics(diagnostics, 1.0)["mopd/teacher_prefix_cache_hit_frac"] == pytest.approx(
        75 / 100
    )
    assert "mopd/teacher_prefix_cache_hit_frac" not in mopd_step_metrics([sample("b", 0.0, 0.0)], 1.0)
