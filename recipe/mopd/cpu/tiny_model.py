"""A tiny Qwen2 model and ChatML tokenizer built locally and deterministically (no download).

The tokenizer is a byte-level BPE trained on the bundled task's own text plus the MOPD teacher templates,
with digits split one per token so arithmetic stays learnable. Its chat template follows Qwen3's
shape, including `enable_thinking`, so chat-template kwargs flow exactly as with a real model.
`build_tiny_model(dir)` writes a random-init model; `tiny_task.pretrain` then teaches it the task.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

MODEL_CONFIG = dict(
    hidden_size=64,
    intermediate_size=192,
    num_hidden_layers=2,
    # head_dim 32 (= hidden_size / heads): the smallest head size vLLM's CPU attention accepts
    # (vllm/v1/attention/backends/cpu_attn.py), so one tiny model serves both CPU rollout backends.
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=1024,
    tie_word_embeddings=True,
    rope_theta=10000.0,
)


def _tokenizer_corpus() -> list[str]:
    from recipe.mopd.cpu import tiny_task
    from recipe.mopd.peers import PeerTemplates

    templates = PeerTemplates()
    texts = [
        templates.solution,
        templates.another_solution,
        templates.failure,
        templates.feedback,
        templates.closing,
        templates.truncation_marker,
        "system user assistant You are a helpful assistant.",
    ]
    texts += [
        row["prompt"][-1]["content"] + " " + row["answer_text"] for row in tiny_task.make_rows(400, seed=1)
    ]
    texts += list(tiny_task.FEEDBACK_TEXTS)
    return texts * 4


def build_tokenizer(out_dir: str | Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )
    wrapped.save_pretrained(str(out_dir))
    return wrapped


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write tokenizer + randomly initialised Qwen2ForCausalLM to `out_dir`; return the directory."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(str(out_dir))
    (out_dir / "mopd_tiny.json").write_text(json.dumps({"model": MODEL_CONFIG, "seed": seed}, indent=1))
    return out_dir
