"""Teacher-context variants of the teacher-signal analysis, built with the training code (`peers`).

Every variant renders the same templates, budgets and chat template as training; only the peer
selection differs. Rollout i never sees itself. Feedback is off: the analysis asks what the *peers*
add, and the failure section is attached whenever requested (`failure_condition="always"`).

| variant | teacher sees |
|---|---|
| none | the question only (standard OPD) |
| 1S, 2S | 1 or 2 successful peers |
| 1F | 1 failed peer |
| 1S1F, 2S1F | successes plus one failure (2S1F is MOPD's default) |
| random | 3 peers drawn from the group ignoring their rewards, in the 2S1F slots |

`random` is the label control: the same slot count and section texts as 2S1F, so any gap between the
two comes from choosing peers by their verifier result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from recipe.mopd.peers import GroupMember, PeerConfig, build_group_contexts, build_teacher_context

# name -> (mode, successes, failures) as PeerConfig spells it.
_LABELLED = {
    "none": ("none", 0, 0),
    "1S": ("positive", 1, 0),
    "2S": ("positive", 2, 0),
    "1F": ("contrastive", 0, 1),
    "1S1F": ("contrastive", 1, 1),
    "2S1F": ("contrastive", 2, 1),
}
RANDOM = "random"
VARIANTS = (*_LABELLED, RANDOM)
RANDOM_SLOTS = _LABELLED["2S1F"][1:]


@dataclass
class VariantContext:
    prompt_ids: list[int]
    num_success_peers: int
    num_failure_peers: int
    # Every requested section is present: a rollout whose group lacks the peers a variant asks for is
    # scored under a thinner context and would blur the comparison between variants.
    effective: bool


def variant_config(name: str, base: PeerConfig) -> PeerConfig:
    if name not in _LABELLED:
        raise ValueError(f"unknown labelled variant {name!r}; expected one of {list(_LABELLED)}")
    mode, num_success, num_failure = _LABELLED[name]
    return dataclasses.replace(
        base,
        mode=mode,
        num_success=num_success,
        num_failure=num_failure,
        failure_condition="always",
        use_feedback=False,
    )


def _random_draw(num_members: int, i: int, count: int, seed: int, uid: str) -> list[int]:
    # sha256 rather than hash(): str hashes are salted per process, and the draw must be reproducible.
    key = f"{seed}\x1f{uid}\x1f{i}\x1frandom_peers".encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    others = [j for j in range(num_members) if j != i]
    return rng.sample(others, min(count, len(others)))


def _random_peer_context(
    tokenizer, prompt, group: Sequence[GroupMember], i: int, base: PeerConfig, uid: str, chat_template_kwargs
) -> VariantContext:
    num_success, num_failure = RANDOM_SLOTS
    drawn = _random_draw(len(group), i, num_success + num_failure, base.seed, uid)
    # Relabel the drawn peers by slot and let the training renderer place them: with selection="first"
    # the first `num_success` members fill the success sections and the rest the failure section, and
    # rollout i (last) is excluded as always.
    success, failure = base.success_threshold, base.success_threshold - 1.0
    staged = [
        dataclasses.replace(group[j], score=success if slot < num_success else failure)
        for slot, j in enumerate(drawn)
    ] + [group[i]]
    cfg = dataclasses.replace(variant_config("2S1F", base), selection="first")
    ctx = build_teacher_context(tokenizer, prompt, staged, len(staged) - 1, cfg, uid, chat_template_kwargs)
    return VariantContext(
        prompt_ids=ctx.prompt_ids,
        num_success_peers=ctx.num_success_peers,
        num_failure_peers=ctx.num_failure_peers,
        effective=len(drawn) == num_success + num_failure,
    )


def build_variant_contexts(
    tokenizer,
    prompt: list[dict],
    group: Sequence[GroupMember],
    variant: str,
    base: PeerConfig,
    uid: str,
    chat_template_kwargs: dict | None = None,
) -> list[VariantContext]:
    """The teacher prompt of every rollout of `group` under `variant`."""
    if variant == RANDOM:
        return [
            _random_peer_context(tokenizer, prompt, group, i, base, uid, chat_template_kwargs)
            for i in range(len(group))
        ]
    cfg = variant_config(variant, base)
    _, want_success, want_failure = _LABELLED[variant]
    return [
        VariantContext(
            prompt_ids=ctx.prompt_ids,
            num_success_peers=ctx.num_success_peers,
            num_failure_peers=ctx.num_failure_peers,
            effective=(ctx.num_success_peers, ctx.num_failure_peers) == (want_success, want_failure),
        )
        for ctx in build_group_contexts(tokenizer, prompt, group, cfg, uid, chat_template_kwargs)
    ]
