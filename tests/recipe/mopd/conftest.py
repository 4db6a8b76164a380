"""Shared fixtures for the pure MOPD modules: a tiny ChatML tokenizer built locally (no download)."""

import pytest

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen3-style ChatML: enable_thinking=False pre-fills an empty think block after the generation header.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

_CORPUS = [
    "You are a helpful assistant. Solve the following problem step by step.",
    "Correct solution:\n\nThe answer is \\boxed{42}.",
    "Another successful solution:\n\ndef solve(n):\n    return sum(range(n))\n",
    "A known failed solution (avoid repeating this mistake):\n\nprint(input())",
    "The following is feedback from your unsuccessful earlier attempt:\n\nTest 3 failed: expected 7, got 9",
    "<think>\nLet me think about this carefully.\n</think>\n\nFinal answer: 12",
    "Correctly solve the original question. [... truncated ...]",
    "for i in range(10): x = x * 2 + i  # loop over the input numbers and accumulate",
    "What is the sum of the first one hundred positive integers? It is 5050.",
]


def _build_chatml_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def chatml_tokenizer():
    return _build_chatml_tokenizer()


@pytest.fixture(scope="session")
def larger_teacher_model(tiny_assets, tmp_path_factory) -> str:
    """A wider and deeper random Qwen2 with the tiny student's tokenizer: a same-tokenizer larger teacher."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out_dir = tmp_path_factory.mktemp("larger_teacher")
    student = AutoConfig.from_pretrained(tiny_assets["model"]).to_dict()
    for derived in ("layer_types", "head_dim", "architectures"):
        student.pop(derived, None)
    sizes = {"hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 6}
    config = Qwen2Config(**{**student, **sizes})
    torch.manual_seed(1)
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(tiny_assets["model"]).save_pretrained(out_dir)
    return str(out_dir)
