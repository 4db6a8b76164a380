"""The checks `scripts/gpu_smoke.sh` prints, on hand-written metric rows."""

from recipe.mopd.smoke_check import ROLLOUT_PROBS_DIFF_MAX, report, smoke_checks


def healthy_step(step: int) -> dict:
    return {
        "step": step,
        "actor/distillation/loss": 0.1,
        "actor/grad_norm": 0.5,
        "training/rollout_probs_diff_max": 0.01,
        "mopd/teacher_prompt_tokens_vs_student": 2.4,
        "mopd/with_success_peer_frac": 0.5,
        "mopd/feedback_frac": 0.0,
        "timing_s/step": 12.0,
    }


def test_a_healthy_run_passes_every_check():
    passed, text = report(
        [healthy_step(1), healthy_step(2), {"step": 2, "val-core/acc": 0.1}], expected_steps=2
    )
    lines = text.splitlines()
    assert passed and len(lines) == len(smoke_checks([healthy_step(1)], 1))
    assert all(line.startswith("  ok") for line in lines)


def test_each_failure_is_reported_by_name():
    cases = {
        "training steps logged": [healthy_step(1)],
        "loss finite": [healthy_step(1), {**healthy_step(2), "actor/distillation/loss": float("nan")}],
        "sync": [
            healthy_step(1),
            {**healthy_step(2), "training/rollout_probs_diff_max": ROLLOUT_PROBS_DIFF_MAX},
        ],
        "teacher contexts": [
            healthy_step(1),
            {**healthy_step(2), "mopd/teacher_prompt_tokens_vs_student": None},
        ],
        "success peer or feedback": [{**healthy_step(s), "mopd/with_success_peer_frac": 0.0} for s in (1, 2)],
    }
    for name, steps in cases.items():
        passed, text = report(steps, expected_steps=2)
        failed = [line for line in text.splitlines() if "FAIL" in line]
        assert not passed and len(failed) == 1, (name, text)
        assert name.split()[-1] in failed[0], (name, failed)


def test_no_training_steps_stops_after_the_count():
    assert smoke_checks([{"step": 1, "val-core/acc": 0.0}], expected_steps=2) == [
        (False, "0/2 training steps logged")
    ]
