"""The CPU platform as verl sees it, each check in a fresh interpreter.

verl resolves its platform once per process and caches it, and the plugin is loaded by `import verl`
through the `verl.plugins` entry point; so every scenario runs in a subprocess that imports nothing but
verl, exactly like a Ray worker does. The recipe is never imported explicitly: if the entry point stops
loading it, these checks fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]

PLATFORM_PROBE = textwrap.dedent(
    """
    import json, sys
    import verl  # loads the verl.plugins entry points: nothing from recipe is imported below

    recipe_modules_after_verl_import = sorted(m for m in sys.modules if m.startswith("recipe.mopd"))

    import torch.distributed as dist
    import verl.utils.distributed as verl_distributed
    import verl.utils.fsdp_utils as fsdp_utils
    from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    report = {"recipe_modules": recipe_modules_after_verl_import}
    report["device_name"] = get_device_name()
    report["backend"] = get_nccl_backend()
    report["pin_memory"] = fsdp_utils.CPUOffloadPolicy(pin_memory=True).pin_memory
    report["rollout_adapter"] = _ROLLOUT_REGISTRY.get(("hf", "async"))
    try:
        replica = RolloutReplicaRegistry.get("hf")
        report["replica"] = replica.__module__ + "." + replica.__qualname__
    except ValueError:
        report["replica"] = None
    if report["device_name"] == "cpu":
        report["max_memory_allocated"] = get_torch_device().max_memory_allocated()
        engine = EngineRegistry.get_engine_cls("language_model", "fsdp2")
        report["engine"] = engine.__module__ + "." + engine.__qualname__
        verl_distributed.initialize_global_process_group_ray(timeout_second=60)
        report["process_group"] = [dist.get_backend(), dist.get_world_size(), dist.get_rank()]
        dist.destroy_process_group()
    print("REPORT " + json.dumps(report))
    """
)

ENGINE_PROBE = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    from verl.utils import tensordict_utils as tu
    from verl.workers.config import FSDPEngineConfig, HFModelConfig, TrainingWorkerConfig
    from verl.workers.engine_workers import TrainingWorker
    from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

    model_dir = sys.argv[1]
    model_config = HFModelConfig(path=model_dir, override_config={"attn_implementation": "sdpa"}, use_remove_padding=True)
    engine_config = FSDPEngineConfig(
        strategy="fsdp2",
        forward_only=True,
        use_torch_compile=False,
        use_dynamic_bsz=False,
        infer_micro_batch_size_per_gpu=3,
        mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"},
    )
    worker = TrainingWorker(TrainingWorkerConfig(model_type="language_model", model_config=model_config,
                                                 engine_config=engine_config, optimizer_config=None))
    worker.reset()

    # Left-padded prompts + right-padded responses of different lengths, as the trainer batches them.
    prompt_width, response_width = 7, 6
    prompt_lens, response_lens = [7, 4, 2], [6, 2, 5]
    generator = torch.Generator().manual_seed(0)
    batch = len(prompt_lens)
    input_ids = torch.zeros(batch, prompt_width + response_width, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (p, r) in enumerate(zip(prompt_lens, response_lens)):
        span = slice(prompt_width - p, prompt_width + r)
        input_ids[row, span] = torch.randint(6, 300, (p + r,), generator=generator)
        attention_mask[row, span] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    data = tu.get_tensordict({
        "input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
        "prompts": input_ids[:, :prompt_width], "responses": input_ids[:, prompt_width:],
        "response_mask": attention_mask[:, prompt_width:].clone(),
    })
    data = left_right_2_no_padding(data)
    tu.assign_non_tensor(data, calculate_entropy=False, compute_loss=False, temperature=1.0)
    log_probs = no_padding_2_padding(tu.get(worker.infer_batch(data), "log_probs"), data)

    reference_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    errors = []
    with torch.no_grad():
        for row, (p, r) in enumerate(zip(prompt_lens, response_lens)):
            sequence = input_ids[row, prompt_width - p : prompt_width + r]
            reference = reference_model(sequence[None]).logits[0].log_softmax(-1)[p - 1 : -1]
            reference = reference.gather(-1, sequence[p:, None]).squeeze(-1)
            errors.append(float((reference - log_probs[row, :r]).abs().max()))
    print("REPORT " + json.dumps({"max_abs_errors": errors, "shape": list(log_probs.shape)}))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_probe(script: str, *args: str, platform: str | None, timeout: int = 180) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_MODULES")}
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        HF_HUB_OFFLINE="1",
        # The engine probe must not inherit a multi-threaded pytest's oversubscription.
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    if platform is not None:
        env["VERL_PLATFORM"] = platform
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    reports = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and reports, (
        f"probe failed (rc={completed.returncode}):\n{completed.stderr[-4000:]}"
    )
    return json.loads(reports[-1][len("REPORT ") :])


@pytest.fixture(scope="module")
def cpu_report() -> dict:
    return run_probe(PLATFORM_PROBE, platform="cpu")


def test_verl_device_layer_answers_cpu(cpu_report):
    assert cpu_report["device_name"] == "cpu"
    assert cpu_report["backend"] == "gloo"
    assert cpu_report["max_memory_allocated"] == 0


def test_fsdp_engine_is_found_for_cpu(cpu_report):
    assert cpu_report["engine"] == "verl.workers.engine.fsdp.transformer_impl.FSDPEngineWithLMHead"


def test_offload_policy_is_never_pinned(cpu_report):
    assert cpu_report["pin_memory"] is False


def test_global_process_group_is_plain_gloo(cpu_report):
    # verl's own backend string would be "cpu:gloo,cpu:gloo", which torch rejects.
    assert cpu_report["process_group"] == ["gloo", 1, 0]


def test_hf_rollout_is_registered_through_the_entry_point(cpu_report):
    assert "recipe.mopd.plugin" in cpu_report["recipe_modules"]
    assert cpu_report["rollout_adapter"] == "recipe.mopd.cpu.hf_rollout.HFServerAdapter"
    assert cpu_report["replica"] == "recipe.mopd.cpu.hf_rollout.HFReplica"


def test_without_verl_platform_cpu_nothing_is_patched():
    """A GPU machine must never silently train on CPU: the platform is opt-in, the rollout name is not."""
    report = run_probe(PLATFORM_PROBE, platform=None)
    assert report["device_name"] != "cpu"
    assert report["pin_memory"] is True
    assert report["rollout_adapter"] == "recipe.mopd.cpu.hf_rollout.HFServerAdapter"


def test_fsdp2_training_worker_logprobs_equal_plain_hf(tiny_assets):
    """verl's real TrainingWorker (FSDP2, gloo, 1 rank, remove-padding) infers what transformers does."""
    report = run_probe(ENGINE_PROBE, tiny_assets["model"], platform="cpu", timeout=300)
    assert report["shape"] == [3, 6]
    assert max(report["max_abs_errors"]) < 1e-5, report
