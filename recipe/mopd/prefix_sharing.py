"""Prefix sharing of teacher contexts (pure; no torch, no verl).

MOPD's teacher reads [question ; peer bodies ; closing ; response] for every rollout. A prefix cache (vLLM's,
or the in-engine teacher's key/value reuse) computes each distinct prefix once, so the teacher's work is the
number of nodes of the token trie over a step's teacher sequences, not the sum of their lengths. Three parts:

- `prefix_trie_tokens` / `new_prefix_tokens`: that count (the `mopd/teacher_prefill_unique_frac` metric).
- `shared_peer_selection` (`mopd.selection=shared`): one seeded order of the group's rollouts; every rollout
  takes the first k successes and m failures of that order other than itself, where the rollouts shown in
  the group's canonical context are split into as few blocks as possible, each block taking the first peers
  of the order outside it. The number of distinct peer selections per group is then the minimum possible
  (`min_distinct_selections`), and each rollout's peers are still a uniformly random choice among its
  eligible siblings (the order is a uniform permutation), so no length or position bias enters.
- `distinct_prompt_plan`: which sequences of a forward share a teacher prompt (used by the in-engine
  teacher to compute each distinct prompt once).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def new_prefix_tokens(sequences: Sequence[Sequence[int]]) -> list[int]:
    """Tokens each sequence adds to the prefix trie of the sequences before it, in the given order.

    Sequence i adds len(i) minus its longest common prefix with any earlier sequence; the sum over all
    sequences is `prefix_trie_tokens` (independent of the order). O(n^2 L) for n sequences of length L, meant
    for one rollout group (n = 8).
    """
    added, seen = [], []
    for seq in sequences:
        seq = list(seq)
        shared = max((_common_prefix(seq, other) for other in seen), default=0)
        added.append(len(seq) - shared)
        seen.append(seq)
    return added


def prefix_trie_tokens(sequences: Sequence[Sequence[int]]) -> int:
    """Nodes of the token trie over `sequences`: the tokens a perfect prefix cache computes.

    Sorted lexicographically, each sequence shares with the trie exactly its common prefix with its sorted
    predecessor (the classic distinct-prefix count), so this is O(n log n L).
    """
    ordered = sorted(list(s) for s in sequences)
    total, previous = 0, []
    for seq in ordered:
        total += len(seq) - _common_prefix(seq, previous)
        previous = seq
    return total


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _sizes(
    num_successes: int, num_failures: int, is_success: bool, k: int, m: int, only_without_success: bool
):
    """(success peers, failure peers) a rollout gets: as many as asked for, as far as its siblings allow."""
    x = min(k, num_successes - int(is_success))
    y = min(m, num_failures - int(not is_success))
    if only_without_success and x > 0:
        y = 0
    return x, y


def _blocks(pool: list[int], size: int) -> tuple[list[list[int]], dict[int, int]]:
    """Peer lists drawn from `pool` (in its order) for rollouts that are themselves members of `pool`.

    List 0 is the first `size` of the pool and serves every member outside it. The members it shows are
    cut into consecutive blocks of len(pool) - size (the most one list of `size` can leave out); block b's
    list is the first `size` of the pool outside the block. That is ceil(len(pool) / (len(pool) - size))
    lists, the fewest whose intersection is empty. Returns the lists and each member's list index.
    """
    if size == 0:
        return [[]], {j: 0 for j in pool}
    free = len(pool) - size
    lists, index = [pool[:size]], {j: 0 for j in pool[size:]}
    shown = pool[:size]
    for start in range(0, size, free):
        block = set(shown[start : start + free])
        lists.append([j for j in pool if j not in block][:size])
        for j in block:
            index[j] = len(lists) - 1
    return lists, index


def shared_peer_selection(
    is_success: Sequence[bool],
    order: Sequence[int],
    num_success: int,
    num_failure: int,
    failures_only_without_success: bool = False,
) -> list[tuple[list[int], list[int]]]:
    """(success peers, failure peers) of every rollout of a group, both in `order`, never the rollout itself.

    `order` is a permutation of range(len(is_success)) (seeded per group by the caller). A rollout gets
    min(num_success, other successes) successes and min(num_failure, other failures) failures (failures only
    when it has no success peer if `failures_only_without_success`), exactly as the other selections do.
    Successes and failures asking for the same counts share their lists; see `min_distinct_selections`.
    """
    n = len(is_success)
    if sorted(order) != list(range(n)):
        raise ValueError(f"order must be a permutation of range({n}), got {list(order)}")
    successes = [j for j in order if is_success[j]]
    failures = [j for j in order if not is_success[j]]
    need = {
        flag: _sizes(
            len(successes), len(failures), flag, num_success, num_failure, failures_only_without_success
        )
        for flag in (True, False)
    }
    selections: list[tuple[list[int], list[int]]] = [([], []) for _ in range(n)]
    if need[True] == need[False]:
        x, y = need[True]
        success_lists, success_index = _blocks(successes, x)
        failure_lists, failure_index = _blocks(failures, y)
        for i in range(n):
            j = success_index[i] if is_success[i] else failure_index[i]
            selections[i] = (
                list(success_lists[min(j, len(success_lists) - 1)]),
                list(failure_lists[min(j, len(failure_lists) - 1)]),
            )
        return selections
    # Successes and failures need different counts, so no list can serve both: each side has its own.
    x, y = need[True]
    success_lists, success_index = _blocks(successes, x)
    for i in successes:
        selections[i] = (list(success_lists[success_index[i]]), failures[:y])
    x, y = need[False]
    failure_lists, failure_index = _blocks(failures, y)
    for i in failures:
        selections[i] = (successes[:x], list(failure_lists[failure_index[i]]))
    return selections


def _lists_needed(pool_size: int, size: int) -> int:
    return 1 if size == 0 else math.ceil(pool_size / (pool_size - size))


def min_distinct_selections(
    num_successes: int,
    num_failures: int,
    num_success: int,
    num_failure: int,
    failures_only_without_success: bool = False,
) -> int:
    """The fewest distinct peer selections a group can have (0 for an empty group).

    A selection of x successes serves only successes outside it, so the lists used by a group's s
    successes must have an empty intersection: at least ceil(s / (s - x)) of them (x >= 1); likewise for
    failures. When successes and failures ask for the same counts one selection can serve both, so the
    bound is the larger of the two; otherwise the two sides never share and the bounds add up.
    """
    args = (num_successes, num_failures)
    need_s = _sizes(*args, True, num_success, num_failure, failures_only_without_success)
    need_f = _sizes(*args, False, num_success, num_failure, failures_only_without_success)
    if need_s == need_f:
        lists = []
        if num_successes:
            lists.append(_lists_needed(num_successes, need_s[0]))
        if num_failures:
            lists.append(_lists_needed(num_failures, need_f[1]))
        return max(lists, default=0)
    return (_lists_needed(num_successes, need_s[0]) if num_successes else 0) + (
        _lists_needed(num_failures, need_f[1]) if num_failures else 0
    )


def distinct_prompt_plan(prompts: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """(index of the first sequence of each distinct prompt, each sequence's distinct-prompt index).

    Distinct prompts are numbered in order of first appearance.
    """
    first: dict[Hashable, int] = {}
    owners, index = [], []
    for i, prompt in enumerate(prompts):
        if prompt not in first:
            first[prompt] = len(owners)
            owners.append(i)
        index.append(first[prompt])
    return owners, index


def shared_budget_chunks(
    prompt_keys: Sequence[Hashable],
    prompt_lens: Sequence[int],
    response_lens: Sequence[int],
    budget: int | None,
) -> list[list[int]]:
    """Consecutive groups of sequences whose shared cost stays within `budget` (None: one group).

    The cost of a group is what the shared forward computes: each distinct prompt once plus every response.
    A sequence that alone exceeds the budget forms a group of its own, as in `token_budget_chunks`.
    """
    if budget is None or not prompt_keys:
        return [list(range(len(prompt_keys)))]
    chunks, current, seen, used = [], [], set(), 0
    for i, key in enumerate(prompt_keys):
        cost = response_lens[i] + (0 if key in seen else prompt_lens[i])
        if current and used + cost > budget:
            chunks.append(current)
            current, seen, used = [], set(), 0
            cost = response_lens[i] + prompt_lens[i]
        current.append(i)
        seen.add(key)
        used += cost
    chunks.append(current)
    return chunks
