"""Prefix-trie token counts, the shared peer selection against a brute-force minimum, and the shared chunks."""

import itertools
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.mopd.prefix_sharing import (
    distinct_prompt_plan,
    min_distinct_selections,
    new_prefix_tokens,
    prefix_trie_tokens,
    shared_budget_chunks,
    shared_peer_selection,
)


def trie_nodes(sequences):
    """Independent count: the set of distinct non-empty prefixes."""
    return len({tuple(s[: j + 1]) for s in sequences for j in range(len(s))})


def test_trie_tokens_on_hand_examples():
    assert prefix_trie_tokens([]) == 0
    assert prefix_trie_tokens([[1, 2, 3]]) == 3
    assert prefix_trie_tokens([[1, 2, 3], [1, 2, 3]]) == 3  # a duplicate costs nothing
    assert prefix_trie_tokens([[1, 2, 3], [1, 2, 4]]) == 4
    assert prefix_trie_tokens([[1, 2], [1, 2, 3, 4]]) == 4  # a prefix of another sequence
    assert prefix_trie_tokens([[1], [2], [3]]) == 3
    assert new_prefix_tokens([[1, 2, 3], [1, 2, 4], [1, 5], [1, 2, 3]]) == [3, 1, 1, 0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), max_size=8), max_size=8))
def test_trie_tokens_equal_distinct_prefixes_in_any_order(sequences):
    assert prefix_trie_tokens(sequences) == trie_nodes(sequences)
    assert sum(new_prefix_tokens(sequences)) == trie_nodes(sequences)
    assert sum(new_prefix_tokens(sequences[::-1])) == trie_nodes(sequences)
    assert prefix_trie_tokens(sequences) <= sum(len(s) for s in sequences)


def _need(labels, i, k, m, only_without_success):
    s, f = sum(labels), len(labels) - sum(labels)
    x = min(k, s - int(labels[i]))
    y = min(m, f - int(not labels[i]))
    return x, (0 if only_without_success and x > 0 else y)


def brute_force_minimum(labels, k, m, only_without_success):
    """Fewest peer selections covering every rollout, by BFS over the covered subsets (small groups)."""
    n = len(labels)
    successes = [j for j in range(n) if labels[j]]
    failures = [j for j in range(n) if not labels[j]]
    needs = {_need(labels, i, k, m, only_without_success) for i in range(n)}
    masks = set()
    for x, y in needs:
        for chosen in itertools.product(
            itertools.combinations(successes, x), itertools.combinations(failures, y)
        ):
            members = set(chosen[0]) | set(chosen[1])
            masks.add(
                sum(
                    1 << i
                    for i in range(n)
                    if i not in members and _need(labels, i, k, m, only_without_success) == (x, y)
                )
            )
    full, frontier, seen, steps = (1 << n) - 1, {0}, {0}, 0
    while full not in frontier:
        steps += 1
        frontier = {a | b for a in frontier for b in masks} - seen
        seen |= frontier
    return steps


groups = st.lists(st.booleans(), min_size=1, max_size=8)
counts = st.integers(0, 3)


@settings(max_examples=400, deadline=None)
@given(groups, counts, counts, st.booleans(), st.randoms(use_true_random=False))
def test_shared_selection_properties(labels, k, m, only_without_success, rng):
    order = list(range(len(labels)))
    rng.shuffle(order)
    selections = shared_peer_selection(labels, order, k, m, only_without_success)
    rank = {j: r for r, j in enumerate(order)}
    for i, (succ, fail) in enumerate(selections):
        # never itself; labels respected; the counts every selection policy gives
        assert i not in succ and i not in fail
        assert all(labels[j] for j in succ) and not any(labels[j] for j in fail)
        assert (len(succ), len(fail)) == _need(labels, i, k, m, only_without_success)
        # canonical order: the group's order, so contexts share their longest prefix
        assert succ == sorted(succ, key=rank.get) and fail == sorted(fail, key=rank.get)
    distinct = len({(tuple(s), tuple(f)) for s, f in selections})
    expected = min_distinct_selections(sum(labels), len(labels) - sum(labels), k, m, only_without_success)
    assert distinct == expected == brute_force_minimum(labels, k, m, only_without_success)


def test_paper_shape_two_contexts_for_2s1f():
    # 4 successes, 4 failures, 2S1F: one canonical context, one for the three rollouts it shows
    labels = [True, False] * 4
    selections = shared_peer_selection(labels, list(range(8)), 2, 1)
    assert len({(tuple(s), tuple(f)) for s, f in selections}) == 2
    assert selections[7] == ([0, 2], [1])
    assert selections[0] == selections[2] == selections[1] == ([4, 6], [3])


def test_each_eligible_peer_is_equally_likely():
    """The order is a uniform permutation, so over many groups rollout 0 sees every other success equally
    often (no position or length bias), as with `random`."""
    labels = [True, True, True, True, True, False, False, False]
    seen = Counter()
    for trial in range(3000):
        order = list(range(8))
        random.Random(trial).shuffle(order)
        succ, _ = shared_peer_selection(labels, order, 2, 1)[0]
        seen.update(succ)
    assert set(seen) == {1, 2, 3, 4}
    assert max(seen.values()) / min(seen.values()) < 1.1


def test_bad_order_is_an_error():
    with pytest.raises(ValueError, match="permutation"):
        shared_peer_selection([True, False], [0, 0], 1, 1)


def test_distinct_prompt_plan_and_shared_chunks():
    assert distinct_prompt_plan(["a", "b", "a", "c", "b"]) == ([0, 1, 3], [0, 1, 0, 2, 1])
    assert distinct_prompt_plan([]) == ([], [])
    keys, prompts, responses = ["a", "a", "a", "b"], [10, 10, 10, 6], [3, 3, 3, 3]
    assert shared_budget_chunks(keys, prompts, responses, None) == [[0, 1, 2, 3]]
    # a: 10 + 3 + 3 = 16 fits 17, the third a costs 3 more -> new chunk; b then costs 9 on top of 13
    assert shared_budget_chunks(keys, prompts, responses, 17) == [[0, 1], [2], [3]]
    assert shared_budget_chunks(keys, prompts, responses, 19) == [[0, 1, 2], [3]]
    # a sequence over the budget goes alone
    assert shared_budget_chunks(["a", "b"], [30, 2], [1, 1], 10) == [[0], [1]]
    assert shared_budget_chunks([], [], [], 10) == [[]]
