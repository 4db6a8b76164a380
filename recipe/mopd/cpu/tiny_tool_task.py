"""The bundled task as a multi-turn tool episode, for verl's `tool_agent` loop on CPU.

An episode: the model calls the `add` tool (recipe/mopd/cpu/tiny_tools.py) in the hermes format its chat
template renders, `<tool_call>{"name": "add", "arguments": {"a": 13, "b": 25}}</tool_call>`, reads the
result, and answers `\\boxed{38}` in a second assistant turn. The tiny model (tiny_model.build_tiny_model,
plus the call's fixed pieces as tokens and a tool-aware template) is pre-trained on such episodes, laid
out token for token as verl's loop lays them out, with the loss on the policy's tokens only. In a fixed share of
the pre-training episodes one operand of the call is miscopied, so sampled groups mix successful and
failed tool-using episodes (a wrong call gets a right sum of the wrong numbers, and a wrong answer).
`prepare(dir)` writes train/val parquet (`agent_name: tool_agent`) and the model, cached by fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from recipe.mopd.cpu import tiny_task

AGENT_NAME = "tool_agent"
# The tool-call tags and the call's fixed JSON as single tokens: a call is 9 tokens instead of 48, so the
# model learns to copy the operands in a fraction of the pre-training (text and parsing are unchanged).
TOOL_CALL_TOKENS = ["<tool_call>", "</tool_call>", '{"name": "add", "arguments": {"a": ', ', "b": ', "}}"]
MISCOPY_RATE = 0.4
PRETRAIN_STEPS = 800
PRETRAIN_BATCH = 16
TOOL_FILE = Path(__file__).with_name("tiny_tools.py")

# tiny_model's ChatML template plus tools (named in a system turn) and assistant tool calls in hermes form.
CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\nTools:' -}}"
    "{%- for tool in tools -%}{{- ' ' + tool.function.name -}}{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') -}}"
    "{%- for call in message.get('tool_calls') or [] -%}"
    "{{- '<tool_call>' + (call.function | tojson) + '</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)


def tool_schemas() -> list[dict]:
    from verl.tools.function_tool import load_function_tools_from_path

    tools = load_function_tools_from_path(str(TOOL_FILE))
    return [t.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for t in tools]


def make_rows(count: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
    rows = tiny_task.make_rows(count, seed, split)
    for row in rows:
        question = row["prompt"][-1]["content"].replace("Answer in", "Use the add tool, then answer in")
        row["prompt"] = [{"role": "user", "content": question}]
        # No tools_kwargs: function tools take no per-sample state (and parquet cannot store an empty struct).
        row["agent_name"] = AGENT_NAME
    return rows


def _operands(row: dict) -> tuple[int, int]:
    question = row["prompt"][-1]["content"]
    a, b = question.split("Add ", 1)[1].split(".", 1)[0].split("+")
    return int(a), int(b)


def call_text(a: int, b: int) -> str:
    return "<tool_call>" + json.dumps({"name": "add", "arguments": {"a": a, "b": b}}) + "</tool_call>"


def episode_tokens(tokenizer, builder, row: dict, a: int, b: int, schemas: list[dict]):
    """(prompt ids, response ids, response mask) of one episode, in verl's tool_agent layout."""
    prompt = builder.build_initial_tokens(row["prompt"], tools=schemas)
    call = call_text(a, b)
    runtime = list(prompt) + tokenizer.encode(call, add_special_tokens=False) + [tokenizer.eos_token_id]
    mask = [1] * (len(runtime) - len(prompt))
    before = row["prompt"] + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": a, "b": b}}}],
        }
    ]
    after = before + [{"role": "tool", "content": str(a + b)}]
    merged = builder.merge_context_tokens(before, after, runtime, tools=schemas).token_ids
    mask += [0] * (len(merged) - len(runtime))
    final = tokenizer.encode(f"\\boxed{{{a + b}}}", add_special_tokens=False) + [tokenizer.eos_token_id]
    mask += [1] * len(final)
    return list(prompt), merged[len(prompt) :] + final, mask


def build_tool_model(model_dir: Path) -> None:
    """tiny_model's model with the tool-call tokens added and the tool-aware chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe.mopd.cpu.tiny_model import build_tiny_model

    build_tiny_model(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.add_tokens(TOOL_CALL_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(str(model_dir))


def pretrain(model_dir: Path, steps: int = PRETRAIN_STEPS, seed: int = 0) -> float:
    """Supervised warm-up on tool episodes (loss on the policy's tokens only); returns the final loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils.tokenizer.continuous_token import QwenContinuousTokenBuilder

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    builder = QwenContinuousTokenBuilder(tokenizer)
    schemas = tool_schemas()
    rng = random.Random(seed)
    examples = []
    for row in make_rows(1000, seed=seed + 100):
        a, b = _operands(row)
        if rng.random() < MISCOPY_RATE:
            if rng.random() < 0.5:
                a = rng.randint(0, tiny_task.MAX_OPERAND)
            else:
                b = rng.randint(0, tiny_task.MAX_OPERAND)
        examples.append(episode_tokens(tokenizer, builder, row, a, b, schemas))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    loss = torch.tensor(0.0)
    model.train()
    # One thread: the matrices are tiny, and on a shared machine a second thread mostly spins.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            batch = rng.sample(examples, PRETRAIN_BATCH)
            width = max(len(p) + len(r) for p, r, _ in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for n, (prompt, response, mask) in enumerate(batch):
                sequence = prompt + response
                input_ids[n, : len(sequence)] = torch.tensor(sequence)
                targets = torch.tensor([t if m else -100 for t, m in zip(response, mask)])
                labels[n, len(prompt) : len(sequence)] = targets
                attention_mask[n, : len(sequence)] = 1
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(str(model_dir))
    return float(loss.detach())


def _fingerprint() -> str:
    import transformers

    from recipe.mopd.cpu import tiny_model

    source = (
        "".join(Path(m.__file__).read_text() for m in (tiny_model, tiny_task)) + Path(__file__).read_text()
    )
    source += TOOL_FILE.read_text()
    return hashlib.sha256((source + transformers.__version__).encode()).hexdigest()[:16]


def prepare(root: str | Path, train_size: int = 256, val_size: int = 32) -> dict[str, str]:
    """Build (or reuse) the pre-trained tool model and the task parquet under `root`; return their paths
    and the tool file for `multi_turn.function_tool_path`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint()
    model_dir = root / f"tiny_tool_model_{fingerprint}"
    if not (model_dir / "pretrain.json").exists():
        # Build beside the target and rename into place, so concurrent builders never see half a model.
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".building_"))
        build_tool_model(staging)
        final_loss = pretrain(staging)
        (staging / "pretrain.json").write_text(json.dumps({"final_loss": final_loss}, indent=1))
        try:
            os.replace(staging, model_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    data_dir = root / f"tool_data_{fingerprint}_{train_size}_{val_size}"
    data_dir.mkdir(parents=True, exist_ok=True)
    train, val = data_dir / "tiny_add_tool_train.parquet", data_dir / "tiny_add_tool_val.parquet"
    if not train.exists():
        tiny_task.write_parquet(make_rows(train_size, seed=11, split="train"), train)
    if not val.exists():
        tiny_task.write_parquet(make_rows(val_size, seed=12, split="val"), val)
    return {
        "model": str(model_dir),
        "train": str(train),
        "val": str(val),
        "tool_file": str(TOOL_FILE),
        **json.loads((model_dir / "pretrain.json").read_text()),
    }
