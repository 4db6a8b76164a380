"""Batched transformers inference behind the CPU rollout server: sampling and prompt log-prob scoring.

This is the CPU stand-in for vLLM's engine. It serves a *batch* of requests at once (the server groups
concurrent requests), because MOPD scores n teacher contexts per prompt group and one forward per
request would dominate the step. Outputs follow verl's vLLM server contract:
- generated tokens with the log-prob of each under temperature-scaled logits (vLLM's
  "processed_logprobs", which is what verl's actor recomputes);
- prompt log-probs in verl's left-shifted layout: row r is log p(token r+1 | tokens <= r) for
  r < S-1, and the last row is a dummy 0 (see verl's `extract_prompt_logprobs`).
No verl import: the engine is unit-tested against a direct forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SamplingSpec:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    prompt_logprobs: int | None = None
    return_logprobs: bool = False

    def sampling_key(self) -> tuple:
        return (self.temperature, self.top_p, self.top_k)


@dataclass
class Request:
    prompt_ids: list[int]
    spec: SamplingSpec


@dataclass
class Result:
    token_ids: list[int] = field(default_factory=list)
    log_probs: list[float] | None = None
    prompt_ids: list[list[int]] | None = None
    prompt_logprobs: list[list[float]] | None = None
    stop_reason: str = "completed"


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        remove_sorted = cumulative - sorted_logits.softmax(-1) > top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, sorted_idx, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


class HFEngine:
    def __init__(self, model: torch.nn.Module, eos_token_ids: list[int], pad_token_id: int, seed: int = 0):
        self.model = model.eval()
        self.eos_token_ids = set(eos_token_ids)
        self.pad_token_id = pad_token_id
        self.generator = torch.Generator().manual_seed(seed)

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> None:
        state = self.model.state_dict()
        unknown = sorted(set(named_tensors) - set(state))
        if unknown:
            raise KeyError(f"weight update names not in the rollout model: {unknown[:5]}")
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                state[name].copy_(tensor.to(state[name].dtype))

    @torch.no_grad()
    def run(self, requests: list[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        scoring = [i for i, r in enumerate(requests) if r.spec.prompt_logprobs is not None]
        if scoring:
            for i, result in zip(scoring, self.score([requests[i] for i in scoring])):
                results[i] = result
        by_params: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            if request.spec.max_tokens > 0 and request.spec.prompt_logprobs is None:
                by_params.setdefault(request.spec.sampling_key(), []).append(i)
        for indices in by_params.values():
            for i, result in zip(indices, self.generate([requests[i] for i in indices])):
                results[i] = result
        return [r if r is not None else Result() for r in results]

    def _right_padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, : len(seq)] = 1
        return input_ids, attention_mask

    @torch.no_grad()
    def score(self, requests: list[Request]) -> list[Result]:
        """Prompt log-probs for each request's full token sequence, in one right-padded forward."""
        input_ids, attention_mask = self._right_padded([r.prompt_ids for r in requests])
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        results = []
        for row, request in enumerate(requests):
            length = len(request.prompt_ids)
            k = request.spec.prompt_logprobs
            row_logprobs = logprobs[row, : length - 1]
            if k == 0:
                next_ids = input_ids[row, 1:length].unsqueeze(-1)
                ids, values = next_ids, row_logprobs.gather(-1, next_ids)
            else:
                values, ids = torch.topk(row_logprobs, k, dim=-1)
            width = max(k, 1)
            ids_rows = ids.tolist() + [[0] * width]
            value_rows = values.tolist() + [[0.0] * width]
            # verl asks for max_tokens=1 alongside prompt_logprobs; the greedy next token keeps the contract.
            next_token = [int(logits[row, length - 1].argmax())] if request.spec.max_tokens > 0 else []
            results.append(Result(token_ids=next_token, prompt_ids=ids_rows, prompt_logprobs=value_rows))
        return results

    @torch.no_grad()
    def generate(self, requests: list[Request]) -> list[Result]:
        """Sample continuations for requests that share temperature/top-p/top-k, with a shared KV cache."""
        spec = requests[0].spec
        width = max(len(r.prompt_ids) for r in requests)
        batch = len(requests)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        for row, request in enumerate(requests):
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(
                request.prompt_ids, dtype=torch.long
            )
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        max_tokens = [r.spec.max_tokens for r in requests]
        outputs: list[list[int]] = [[] for _ in requests]
        logprobs: list[list[float]] = [[] for _ in requests]
        finished = [m <= 0 for m in max_tokens]
        past = None
        step_ids, step_positions = input_ids, position_ids
        for _ in range(max(max_tokens)):
            out = self.model(
                input_ids=step_ids,
                attention_mask=attention_mask,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            if spec.temperature > 0:
                scaled = logits / spec.temperature
                token_logprobs = torch.log_softmax(scaled, dim=-1)
                probs = _filter_logits(scaled, spec.top_k, spec.top_p).softmax(-1)
                next_tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
            else:
                token_logprobs = torch.log_softmax(logits, dim=-1)
                next_tokens = logits.argmax(-1)
            chosen = token_logprobs.gather(-1, next_tokens.unsqueeze(-1)).squeeze(-1)
            for row in range(batch):
                if finished[row]:
                    continue
                token = int(next_tokens[row])
                outputs[row].append(token)
                logprobs[row].append(float(chosen[row]))
                if token in self.eos_token_ids or len(outputs[row]) >= max_tokens[row]:
                    finished[row] = True
            if all(finished):
                break
            next_tokens = torch.where(
                torch.tensor(finished), torch.full_like(next_tokens, self.pad_token_id), next_tokens
            )
            step_ids = next_tokens.unsqueeze(-1)
            step_positions = step_positions[:, -1:] + 1
            attention_mask = torch.cat(
                [attention_mask, torch.ones((batch, 1), dtype=attention_mask.dtype)], dim=-1
            )
        return [
            Result(token_ids=tokens, log_probs=lps if r.spec.return_logprobs else None)
            for tokens, lps, r in zip(outputs, logprobs, requests)
        ]
