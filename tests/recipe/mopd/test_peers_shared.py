"""`selection=shared` through the training renderer: the rendered teacher prompts of a group."""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipe.mopd.peers import GroupMember, PeerConfig, build_group_contexts, select_peers
from recipe.mopd.prefix_sharing import min_distinct_selections, prefix_trie_tokens

PROMPT = [{"role": "user", "content": "What is the sum of the first one hundred positive integers?"}]


def make_group(labels, feedback=""):
    return [
        GroupMember(
            response_text=f"response {j} says {5050 + j}, for i in range(10): x = x * 2 + i",
            response_ids=list(range(20 + j)),
            score=1.0 if ok else 0.0,
            feedback=feedback,
        )
        for j, ok in enumerate(labels)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=st.lists(st.booleans(), min_size=1, max_size=8),
    mode=st.sampled_from([("contrastive", 2, 1), ("contrastive", 1, 1), ("positive", 2, 0)]),
    condition=st.sampled_from(["always", "when_no_success"]),
    uid=st.text(min_size=1, max_size=6),
)
def test_shared_contexts_are_the_fewest_and_match_random_counts(
    chatml_tokenizer, labels, mode, condition, uid
):
    name, k, m = mode
    shared = PeerConfig(
        mode=name,
        num_success=k,
        num_failure=m,
        failure_condition=condition,
        selection="shared",
        use_feedback=False,
    )
    group = make_group(labels)
    contexts = build_group_contexts(chatml_tokenizer, PROMPT, group, shared, uid)
    reference = build_group_contexts(
        chatml_tokenizer, PROMPT, group, dataclasses.replace(shared, selection="random"), uid
    )
    for i, (ctx, ref) in enumerate(zip(contexts, reference)):
        assert (ctx.num_success_peers, ctx.num_failure_peers) == (
            ref.num_success_peers,
            ref.num_failure_peers,
        )
        assert ctx.masked == ref.masked
        selection = select_peers(group, i, shared, uid)
        assert i not in selection.successes + selection.failures
    # Feedback off: a teacher prompt is determined by the peer selection, so the prompts are as few as
    # the selections can be.
    distinct = len({tuple(ctx.prompt_ids) for ctx in contexts})
    expected = min_distinct_selections(
        sum(labels),
        len(labels) - sum(labels),
        k,
        m,
        failures_only_without_success=condition == "when_no_success",
    )
    assert distinct == expected


def test_shared_is_reproducible_per_uid_and_differs_across_groups(chatml_tokenizer):
    cfg = PeerConfig(selection="shared")
    group = make_group([True, False, True, True, False, True, False, True])
    first = [select_peers(group, i, cfg, "uid-1") for i in range(8)]
    assert first == [select_peers(group, i, cfg, "uid-1") for i in range(8)]
    orders = {tuple(select_peers(group, 5, cfg, f"uid-{u}").successes) for u in range(20)}
    assert len(orders) > 3


def test_paper_shape_group_needs_two_teacher_prompts(chatml_tokenizer):
    cfg = PeerConfig(selection="shared", use_feedback=False)
    group = make_group([True, False, True, False, True, False, True, False])
    contexts = build_group_contexts(chatml_tokenizer, PROMPT, group, cfg, "g")
    assert len({tuple(c.prompt_ids) for c in contexts}) == 2
    random_contexts = build_group_contexts(
        chatml_tokenizer, PROMPT, group, dataclasses.replace(cfg, selection="random"), "g"
    )
    assert len({tuple(c.prompt_ids) for c in random_contexts}) > 2
    # The prefix cache's work: the question and two peer sets, against nearly every context in full.
    unique = prefix_trie_tokens([c.prompt_ids for c in contexts])
    assert unique < 0.5 * prefix_trie_tokens([c.prompt_ids for c in random_contexts])


def test_unknown_selection_lists_shared():
    with pytest.raises(ValueError, match="shared"):
        PeerConfig(selection="nearest")
