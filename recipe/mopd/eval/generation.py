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


def load_hf(model_path: str | Path):
    """(tokenizer, fp32 model) on CPU, the layout HFEngine serves."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
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
) -> list[list[Sample]]:
    """k samples per prompt through the project's batched CPU engine, `batch_size` sequences at a time."""
    from recipe.mopd.cpu.hf_engine import Request, SamplingSpec

    tokenizer, model = load_hf(model_path)
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
) -> list[list[Sample]]:
    """k samples per prompt from vLLM's offline engine (GPU only; vLLM is imported here, not at load)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_path), seed=sampling.seed, tensor_parallel_size=tensor_parallel_size)
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
