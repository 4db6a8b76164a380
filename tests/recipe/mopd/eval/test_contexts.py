"""Context variants of the teacher-signal analysis, rendered by the training code."""

import pytest

from recipe.mopd.eval.contexts import VARIANTS, build_variant_contexts, variant_config
from recipe.mopd.peers import GroupMember, PeerConfig, PeerTemplates

TEMPLATES = PeerTemplates()
SUCCESS_HEADER = TEMPLATES.solution.split("{peer}")[0].strip()
FAILURE_HEADER = TEMPLATES.failure.split("{peer}")[0].strip()
PROMPT = [{"role": "user", "content": "Add 2+3. Answer in \\boxed{}."}]


@pytest.fixture(scope="module")
def tokenizer(tiny_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_assets["model"])


def make_group(tokenizer, scores):
    texts = [f"attempt {chr(ord('a') + i)} \\boxed{{{i}}}" for i in range(len(scores))]
    return [
        GroupMember(text, tokenizer.encode(text, add_special_tokens=False), float(score))
        for text, score in zip(texts, scores)
    ]


def rendered(tokenizer, ctx) -> str:
    return tokenizer.decode(ctx.prompt_ids)


def peers_shown(tokenizer, ctx, group) -> set[int]:
    text = rendered(tokenizer, ctx)
    return {j for j, member in enumerate(group) if member.response_text in text}


@pytest.mark.parametrize(
    "variant,successes,failures",
    [("none", 0, 0), ("1S", 1, 0), ("2S", 2, 0), ("1F", 0, 1), ("1S1F", 1, 1), ("2S1F", 2, 1)],
)
def test_labelled_variants_show_the_requested_peers_and_never_self(tokenizer, variant, successes, failures):
    scores = [1, 1, 1, 0, 0]
    group = make_group(tokenizer, scores)
    contexts = build_variant_contexts(tokenizer, PROMPT, group, variant, PeerConfig(), uid="g")
    assert len(contexts) == len(group)
    for i, ctx in enumerate(contexts):
        shown = peers_shown(tokenizer, ctx, group)
        assert i not in shown
        assert sum(scores[j] == 1 for j in shown) == ctx.num_success_peers == successes
        assert sum(scores[j] == 0 for j in shown) == ctx.num_failure_peers == failures
        assert ctx.effective
        text = rendered(tokenizer, ctx)
        assert (SUCCESS_HEADER in text) == (successes > 0)
        assert (FAILURE_HEADER in text) == (failures > 0)


def test_missing_sections_make_a_rollout_ineffective(tokenizer):
    # two successes: a success rollout sees only one other success, so 2S is not what it gets
    group = make_group(tokenizer, [1, 1, 0, 0])
    contexts = build_variant_contexts(tokenizer, PROMPT, group, "2S", PeerConfig(), uid="g")
    assert [c.effective for c in contexts] == [False, False, True, True]
    assert [c.num_success_peers for c in contexts] == [1, 1, 2, 2]
    # no failure anywhere except rollout 0 itself: 1F is effective for the others only
    contexts = build_variant_contexts(
        tokenizer, PROMPT, make_group(tokenizer, [0, 1, 1]), "1F", PeerConfig(), "g"
    )
    assert [c.effective for c in contexts] == [False, True, True]


def test_feedback_is_never_shown(tokenizer):
    group = make_group(tokenizer, [0, 0, 0])
    for member in group:
        member.feedback = "FEEDBACK-MARKER"
    for variant in VARIANTS:
        for ctx in build_variant_contexts(tokenizer, PROMPT, group, variant, PeerConfig(), uid="g"):
            assert "FEEDBACK-MARKER" not in rendered(tokenizer, ctx)


def test_random_peers_ignore_labels_fill_the_2s1f_slots_and_are_seeded(tokenizer):
    scores = [0, 0, 0, 0, 0, 0]
    group = make_group(tokenizer, scores)
    labelled = build_variant_contexts(tokenizer, PROMPT, group, "2S1F", PeerConfig(), uid="g")
    assert not any(c.effective for c in labelled)
    contexts = build_variant_contexts(tokenizer, PROMPT, group, "random", PeerConfig(), uid="g")
    for i, ctx in enumerate(contexts):
        shown = peers_shown(tokenizer, ctx, group)
        assert len(shown) == 3 and i not in shown
        assert (ctx.num_success_peers, ctx.num_failure_peers) == (2, 1)
        assert ctx.effective
        text = rendered(tokenizer, ctx)
        assert SUCCESS_HEADER in text and FAILURE_HEADER in text
    again = build_variant_contexts(tokenizer, PROMPT, group, "random", PeerConfig(), uid="g")
    assert [c.prompt_ids for c in again] == [c.prompt_ids for c in contexts]
    first_rollout = {
        tuple(
            build_variant_contexts(tokenizer, PROMPT, group, "random", PeerConfig(seed=seed), "g")[
                0
            ].prompt_ids
        )
        for seed in range(5)
    }
    assert len(first_rollout) > 1


def test_random_peers_in_a_small_group_are_not_effective(tokenizer):
    contexts = build_variant_contexts(
        tokenizer, PROMPT, make_group(tokenizer, [1, 0, 1]), "random", PeerConfig(), "g"
    )
    assert not any(c.effective for c in contexts)
    assert all(c.num_success_peers + c.num_failure_peers == 2 for c in contexts)


def test_variant_config_keeps_budgets_and_forces_the_analysis_settings():
    base = PeerConfig(max_peer_tokens=100, failure_condition="when_no_success", use_feedback=True, seed=3)
    cfg = variant_config("1S1F", base)
    assert (cfg.mode, cfg.num_success, cfg.num_failure) == ("contrastive", 1, 1)
    assert cfg.failure_condition == "always" and not cfg.use_feedback
    assert cfg.max_peer_tokens == 100 and cfg.seed == 3
    with pytest.raises(ValueError, match="unknown"):
        variant_config("random", base)
