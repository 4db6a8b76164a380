"""Teacher logits for sequences that share teacher prompts: each distinct prompt is computed once.

With `mopd.selection=shared` most rollouts of a group read the same teacher prompt. The in-engine teacher
(`engine_teacher`) then runs, per chunk of a micro-batch, two forwards instead of one forward over every
[teacher prompt ; response]:
  1. the distinct prompts, right-padded into one batch, recording each layer's keys and values and the
     logits of each prompt's last position (the row that predicts the first response token);
  2. all responses, right-padded into one batch, each attending to its own prompt's recorded keys and
     values (selected per row; pad positions masked) and causally to itself, with positions continuing
     after its prompt.
Attention over [prompt ; response] is exactly the per-sample attention, so the logits equal the per-sample
forward's up to floating-point summation order (1e-5 in fp32, tested). The recorded keys and values are the
distinct prompts' only; each layer gathers the per-row copies transiently and stores nothing, so no cache
grows across layers as in generation.

Only for causal language models whose every layer is full attention (`supports_prefix_sharing`); sliding
windows, linear attention or multimodal inputs fall back to the per-sample forward.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

from recipe.mopd.prefix_sharing import distinct_prompt_plan


def supports_prefix_sharing(config) -> bool:
    """True when every attention layer of `config` is full attention (no sliding window, no linear layers)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None)
    if layer_types is not None and any(kind != "full_attention" for kind in layer_types):
        return False
    return not (getattr(text, "use_sliding_window", False) and getattr(text, "sliding_window", None))


def prompt_key(prompt: torch.Tensor) -> bytes:
    """A hashable identity of a prompt's token ids."""
    return prompt.detach().to("cpu", torch.int64).numpy().tobytes()


def has_shared_prompt(prompts: list[torch.Tensor]) -> bool:
    return len({prompt_key(p) for p in prompts}) < len(prompts)


class _PromptLayer(DynamicLayer):
    """One layer's keys/values of the distinct prompts [U, H, P_max, D].

    While `rows` is None (prompt forward) `update` records them; afterwards it returns, for each row of the
    response batch, its prompt's keys/values followed by the new ones, without storing anything.
    """

    def __init__(self):
        super().__init__()
        self.rows: torch.Tensor | None = None

    def update(self, key_states, value_states, *args, **kwargs):
        if self.rows is None:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.keys, self.values, self.is_initialized = key_states, value_states, True
            return key_states, value_states
        keys = torch.cat([self.keys.index_select(0, self.rows), key_states], dim=-2)
        values = torch.cat([self.values.index_select(0, self.rows), value_states], dim=-2)
        return keys, values

    def get_seq_length(self) -> int:
        return 0 if self.rows is None or not self.is_initialized else self.keys.shape[-2]


def _right_pad(sequences: list[torch.Tensor], length: int, device) -> torch.Tensor:
    out = torch.zeros(len(sequences), length, dtype=torch.long, device=device)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq.to(device)
    return out


def shared_prefix_logits(
    module, prompts: list[torch.Tensor], responses: list[torch.Tensor], device: torch.device | str
) -> torch.Tensor:
    """Logits [sum R_i, V] of the rows predicting each response token, in sample order.

    Row j of sample i is the logit vector at position P_i - 1 + j of [prompts[i] ; responses[i]], as the
    per-sample forward gives it. Exactly two calls of `module` (a Hugging Face causal LM, possibly FSDP-wrapped;
    the caller sets no_grad and autocast), whatever the number of samples, so that data-parallel ranks can
    match their forward counts. Inputs go to `device` (FSDP2 with CPU offload keeps the parameters on the
    CPU between forwards). Raises ValueError for an empty prompt.
    """
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every teacher prompt needs at least one token")
    owners, index = distinct_prompt_plan([prompt_key(p) for p in prompts])
    distinct = [prompts[i] for i in owners]
    prompt_lens = torch.tensor([len(p) for p in distinct], device=device)
    prompt_max = int(prompt_lens.max())
    prompt_mask = torch.arange(prompt_max, device=device)[None, :] < prompt_lens[:, None]
    text_config = (
        module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    )
    cache = Cache(layers=[_PromptLayer() for _ in range(text_config.num_hidden_layers)])

    last = prompt_lens - 1
    keep = torch.unique(last)
    prompt_out = module(
        input_ids=_right_pad(distinct, prompt_max, device),
        attention_mask=prompt_mask.long(),
        position_ids=torch.arange(prompt_max, device=device).expand(len(distinct), -1),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=keep,
    )
    first_rows = prompt_out.logits[torch.arange(len(distinct), device=device), torch.searchsorted(keep, last)]
    del prompt_out

    rows = torch.tensor(index, device=device)
    for layer in cache.layers:
        layer.rows = rows
    response_lens = torch.tensor([len(r) for r in responses], device=device)
    # One position at least, so that the forward count per chunk never depends on the data.
    response_max = max(int(response_lens.max()), 1)
    response_mask = torch.arange(response_max, device=device)[None, :] < response_lens[:, None]
    response_out = module(
        input_ids=_right_pad(responses, response_max, device),
        attention_mask=torch.cat([prompt_mask[rows], response_mask], dim=1).long(),
        position_ids=prompt_lens[rows, None] + torch.arange(response_max, device=device)[None, :],
        past_key_values=cache,
        use_cache=True,
    )
    parts = []
    for sample, length in enumerate(response_lens.tolist()):
        if length == 0:
            continue
        parts.append(first_rows[index[sample]].unsqueeze(0))
        parts.append(response_out.logits[sample, : length - 1])
    if not parts:
        return first_rows.new_zeros(0, first_rows.shape[-1])
    return torch.cat(parts)
