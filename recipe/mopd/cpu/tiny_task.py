"""The bundled task: two-number addition with a `\\boxed{}` answer, as verl parquet, plus its rule verifier.

It exists so that a ~100k-parameter model reaches *partial* accuracy within a few CPU minutes: MOPD needs
groups that mix successes and failures. `prepare(dir)` writes train/val parquet and a pre-trained model
(cached by a fingerprint of everything that determines it), and is what the CPU demo and the tests use.
Rows carry `data_source="math/tiny_add"`, so the project's math verifier grades them too.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

DATA_SOURCE = "math/tiny_add"
MAX_OPERAND = 29
FEEDBACK_TEXTS = ("No \\boxed{} answer was found.", "The boxed answer is wrong.")
PRETRAIN_STEPS = 800
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def make_rows(count: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        answer = str(a + b)
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": f"Add {a}+{b}. Answer in \\boxed{{}}."}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": answer},
                "extra_info": {"index": index, "split": split, "verifier": "math"},
                "answer_text": f"\\boxed{{{answer}}}",
            }
        )
    return rows


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs
) -> dict[str, Any]:
    """Rule verifier of the bundled task (same result keys as `verifiers.verl_reward.compute_score`)."""
    matches = _BOXED.findall(solution_str or "")
    if not matches:
        return {"score": 0.0, "acc": False, "pred": "", "format_ok": False, "feedback": FEEDBACK_TEXTS[0]}
    pred = matches[-1].strip()
    correct = pred == str(ground_truth).strip()
    return {
        "score": 1.0 if correct else 0.0,
        "acc": correct,
        "pred": pred,
        "format_ok": True,
        "feedback": "" if correct else FEEDBACK_TEXTS[1],
    }


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame([{k: v for k, v in row.items() if k != "answer_text"} for row in rows])
    frame.to_parquet(path, index=False)


def pretrain(model_dir: Path, steps: int = PRETRAIN_STEPS, seed: int = 0) -> float:
    """Supervised warm-up on the task (loss on the answer tokens only); returns the final loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rows = make_rows(2000, seed=seed + 100)
    examples = []
    for row in rows:
        prompt_ids = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        answer_ids = tokenizer.encode(row["answer_text"], add_special_tokens=False) + [tokenizer.eos_token_id]
        examples.append((list(prompt_ids), answer_ids))
    rng = random.Random(seed)
    loss = torch.tensor(0.0)
    model.train()
    for _ in range(steps):
        batch = rng.sample(examples, 64)
        width = max(len(p) + len(a) for p, a in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (prompt_ids, answer_ids) in enumerate(batch):
            sequence = prompt_ids + answer_ids
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
            labels[row, len(prompt_ids) : len(sequence)] = torch.tensor(answer_ids)
            attention_mask[row, : len(sequence)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(str(model_dir))
    return float(loss.detach())


def sampled_accuracy(
    model_dir: Path, num_prompts: int = 64, temperature: float = 1.0, seed: int = 0
) -> float:
    """Fraction of sampled answers that the verifier accepts, via the project's own HF engine."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe.mopd.cpu.hf_engine import HFEngine, Request, SamplingSpec

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, seed=seed)
    rows = make_rows(num_prompts, seed=seed + 7, split="val")
    requests = [
        Request(
            tokenizer.apply_chat_template(
                row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
            ),
            SamplingSpec(max_tokens=16, temperature=temperature),
        )
        for row in rows
    ]
    results = engine.run(requests)
    scores = [
        compute_score(
            DATA_SOURCE,
            tokenizer.decode(r.token_ids, skip_special_tokens=True),
            row["reward_model"]["ground_truth"],
        )["score"]
        for r, row in zip(results, rows)
    ]
    return sum(scores) / len(scores)


def _fingerprint() -> str:
    from recipe.mopd.cpu import tiny_model

    source = Path(tiny_model.__file__).read_text() + Path(__file__).read_text()
    import transformers

    return hashlib.sha256((source + transformers.__version__).encode()).hexdigest()[:16]


def prepare(root: str | Path, train_size: int = 256, val_size: int = 32) -> dict[str, str]:
    """Build (or reuse) the tiny pre-trained model and the task parquet under `root`; return their paths."""
    from recipe.mopd.cpu.tiny_model import build_tiny_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint()
    model_dir = root / f"tiny_model_{fingerprint}"
    if not (model_dir / "pretrain.json").exists():
        # Build beside the target and rename into place, so concurrent builders never see half a model.
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".building_"))
        build_tiny_model(staging)
        final_loss = pretrain(staging)
        accuracy = sampled_accuracy(staging)
        (staging / "pretrain.json").write_text(
            json.dumps({"final_loss": final_loss, "sampled_accuracy_t1": accuracy}, indent=1)
        )
        try:
            os.replace(staging, model_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    info_path = model_dir / "pretrain.json"
    data_dir = root / f"data_{fingerprint}_{train_size}_{val_size}"
    data_dir.mkdir(parents=True, exist_ok=True)
    train, val = data_dir / "tiny_add_train.parquet", data_dir / "tiny_add_val.parquet"
    if not train.exists():
        write_parquet(make_rows(train_size, seed=11, split="train"), train)
    if not val.exists():
        write_parquet(make_rows(val_size, seed=12, split="val"), val)
    return {
        "model": str(model_dir),
        "train": str(train),
        "val": str(val),
        **json.loads(info_path.read_text()),
    }
