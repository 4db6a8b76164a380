"""Per-step `mopd/` metrics from the per-sample diagnostics the agent loop attaches (pure; no verl).

Context statistics: how many samples had a success peer, a failure peer, feedback, were masked or
truncated, how long teacher prompts were, and the share of teacher tokens a prefix cache must compute. Teacher signal: per rollout the mean (teacher − student)
log-prob over its response tokens, compared within each group that has both a success and a failure
to the verifier reward (AUROC, Spearman, Kendall tau, pairwise accuracy), averaged over such groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from recipe.mopd.signal_metrics import group_signal_metrics


def mopd_step_metrics(diagnostics: Sequence[dict[str, Any]], success_threshold: float) -> dict[str, float]:
    if not diagnostics:
        return {}

    def fraction(predicate) -> float:
        return float(np.mean([1.0 if predicate(d) else 0.0 for d in diagnostics]))

    teacher_tokens = np.array([d["teacher_prompt_tokens"] for d in diagnostics], dtype=float)
    student_tokens = np.array([d["student_prompt_tokens"] for d in diagnostics], dtype=float)
    all_peers_tokens = np.array([d["all_peers_prompt_tokens"] for d in diagnostics], dtype=float)
    metrics = {
        "mopd/with_success_peer_frac": fraction(lambda d: d["success_peers"] > 0),
        "mopd/with_failure_peer_frac": fraction(lambda d: d["failure_peers"] > 0),
        "mopd/feedback_frac": fraction(lambda d: d["used_feedback"]),
        "mopd/masked_frac": fraction(lambda d: d["masked"]),
        # Rollouts whose verifier score was missing or not finite (masked, never a peer).
        "mopd/invalid_score_frac": fraction(lambda d: d.get("invalid_score", False)),
        "mopd/truncated_frac": fraction(lambda d: d["truncated"]),
        "mopd/teacher_prompt_tokens/mean": float(teacher_tokens.mean()),
        "mopd/teacher_prompt_tokens/max": float(teacher_tokens.max()),
        "mopd/teacher_prompt_tokens_vs_student": float(teacher_tokens.sum() / max(student_tokens.sum(), 1.0)),
        "mopd/teacher_prompt_tokens_vs_all_peers": float(
            teacher_tokens.sum() / max(all_peers_tokens.sum(), 1.0)
        ),
        # Tokens of [teacher prompt ; response] a perfect prefix cache computes, over their naive sum.
        "mopd/teacher_prefill_unique_frac": float(
            sum(d["teacher_new_prefix_tokens"] for d in diagnostics)
            / max(sum(d["teacher_sequence_tokens"] for d in diagnostics), 1)
        ),
    }
    # The serving teacher's own prefix cache (live teacher on vLLM): prompt tokens it did not recompute.
    cached = [d for d in diagnostics if d.get("teacher_cached_tokens") is not None]
    if cached:
        metrics["mopd/teacher_prefix_cache_hit_frac"] = float(
            sum(d["teacher_cached_tokens"] for d in cached)
            / max(sum(d["teacher_sequence_tokens"] for d in cached), 1)
        )
    # Multi-turn (tool_agent) rollouts: assistant turns per rollout, and the share of response tokens that
    # are the policy's own (the rest, tool results, carry no distillation loss). Single-turn: 1 and 1.
    turns = np.array([d.get("assistant_turns", 1) for d in diagnostics], dtype=float)
    metrics["mopd/assistant_turns/mean"] = float(turns.mean())
    metrics["mopd/assistant_turns/min"] = float(turns.min())
    policy_frac = [d.get("policy_token_frac", 1.0) for d in diagnostics]
    metrics["mopd/policy_token_frac"] = float(np.mean(policy_frac))
    # An in-engine teacher (ema/ref) runs only inside the actor update: its rollouts carry no signal.
    scored = [d for d in diagnostics if "signal" in d and not d.get("invalid_score", False)]
    if not scored:
        return metrics
    metrics["mopd/signal/mean"] = float(np.mean([d["signal"] for d in scored]))
    groups: dict[str, list[dict]] = defaultdict(list)
    for d in scored:
        groups[d["uid"]].append(d)
    signal = group_signal_metrics(
        [([d["signal"] for d in g], [d["score"] for d in g]) for g in groups.values()], success_threshold
    )
    metrics["mopd/signal/mixed_groups"] = float(signal["num_mixed_groups"])
    for name in ("auroc", "spearman", "kendall_tau", "pairwise_accuracy"):
        if signal[name] is not None:
            metrics[f"mopd/signal/{name}"] = float(signal[name])
    return metrics
