"""A real verl V1 run of MOPD over multi-turn tool episodes on CPU: `python -m recipe.mopd.main_mopd
platform=cpu` (and `platform=cpu_vllm`, verl's vLLM server, in the vLLM layer) with verl's `tool_agent` loop, the project's `add` function tool and the tiny model
pre-trained to call it (recipe/mopd/cpu/tiny_tool_task.py); rewards from the project's math verifier."""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

from recipe.mopd.cpu import tiny_tool_task
from recipe.mopd.cpu.demo import training_command
from recipe.mopd.metrics_report import read_metrics

REPO = Path(__file__).resolve().parents[3]
CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def tool_overrides(assets: dict) -> list[str]:
    return [
        "data.max_prompt_length=96",
        "data.max_response_length=64",
        "actor_rollout_ref.rollout.multi_turn.enable=true",
        f"actor_rollout_ref.rollout.multi_turn.function_tool_path={assets['tool_file']}",
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3",
        "actor_rollout_ref.rollout.multi_turn.format=hermes",
        # whole episodes as peers (~30 tokens each) plus the question
        "mopd.max_peer_tokens=null",
        "mopd.max_prompt_tokens=768",
    ]


@pytest.fixture(scope="module")
def tool_assets():
    return tiny_tool_task.prepare(os.environ.get("MOPD_TEST_CACHE", REPO / ".cache" / "test_assets"))


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["cpu", pytest.param("cpu_vllm", marks=pytest.mark.vllm)])
def test_mopd_over_multi_turn_tool_episodes(tool_assets, tmp_path, platform):
    metrics_path = tmp_path / "metrics.jsonl"
    env = {
        **os.environ,
        "VERL_FILE_LOGGER_PATH": str(metrics_path),
        "HF_HUB_OFFLINE": "1",
        "RAY_DEDUP_LOGS": "0",
    }
    overrides = [
        f"trainer.default_local_dir={tmp_path / 'ckpt'}",
        "trainer.logger=[file]",
        f"trainer.rollout_data_dir={tmp_path / 'rollouts'}",
        *tool_overrides(tool_assets),
    ]
    command = training_command(tool_assets, 2, overrides, platform=platform)
    completed = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    steps = [s for s in read_metrics(metrics_path) if any(k.startswith("mopd/") for k in s)]
    assert [s["step"] for s in steps] == [1, 2]
    for step in steps:
        # nearly every rollout called the tool and answered after its result (a malformed call ends the
        # episode after one turn; see the per-rollout check below)
        assert step["mopd/assistant_turns/mean"] > 1.5
        assert step["mopd/assistant_turns/min"] >= 1
        # the tool results sit in the response with response_mask 0: part, not all, of it is the policy's
        assert 0.3 < step["mopd/policy_token_frac"] < 1.0
        assert math.isfinite(step["actor/distillation/loss"])
        assert math.isfinite(step["mopd/signal/mean"])
        # peers' whole episodes make the teacher prompt much longer than the student's
        assert step["mopd/teacher_prompt_tokens_vs_student"] > 1.5
        # rollout and trainer agree on the policy's tokens of the interleaved responses
        assert step["training/rollout_probs_diff_max"] < 1e-3
    # groups mix successful and failed tool-using episodes
    assert max(s["mopd/with_success_peer_frac"] for s in steps) > 0.0
    assert max(s["mopd/with_failure_peer_frac"] for s in steps) > 0.0
    rewards = [s["critic/score/mean"] for s in steps if "critic/score/mean" in s]
    assert rewards and all(0.0 < r < 1.0 for r in rewards)
    rollouts = [json.loads(line) for p in (tmp_path / "rollouts").glob("*.jsonl") for line in p.open()]
    called = 0
    for rollout in rollouts:
        match = CALL.search(rollout["output"])
        try:
            arguments = json.loads(match.group(1))["arguments"] if match else None
        except json.JSONDecodeError:
            arguments = None
        if isinstance(arguments, dict) and {"a", "b"} <= arguments.keys():
            # verl's loop ran the project's tool on the call and the policy took a second turn after it
            called += 1
            result = f"</tool_call>\ntool\n{arguments['a'] + arguments['b']}\nassistant\n"
            assert result in rollout["output"], rollout["output"]
    assert called > len(rollouts) / 2
