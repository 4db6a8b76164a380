import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipe.mopd.peers import (
    GroupMember,
    PeerConfig,
    PeerTemplates,
    TeacherContextOverflow,
    build_group_contexts,
    build_teacher_context,
    is_success,
    is_valid_score,
    select_peers,
    strip_thinking,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
QUESTION = "What is the sum of the first one hundred positive integers?"
PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": QUESTION},
]
NO_THINK = {"enable_thinking": False}
CLOSING = "\n\nCorrectly solve the original question."
MARKER = "\n[... truncated ...]\n"


def member(text, score, feedback="", n_ids=None):
    return GroupMember(
        response_text=text,
        response_ids=list(range(len(text) if n_ids is None else n_ids)),
        score=score,
        feedback=feedback,
    )


def make_group(scores, feedback=None):
    feedback = feedback or {}
    return [member(f"response {j} says {5050 + j}", s, feedback.get(j, "")) for j, s in enumerate(scores)]


def render(tok, messages, **kwargs):
    out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **kwargs)
    return list(out["input_ids"]) if hasattr(out, "keys") else list(out)


def header_ids(tok, **kwargs):
    """Token ids the chat template appends for add_generation_prompt=True."""
    messages = [{"role": "user", "content": "q"}]
    without = tok.apply_chat_template(messages, add_generation_prompt=False, tokenize=True, **kwargs)[
        "input_ids"
    ]
    with_header = render(tok, messages, **kwargs)
    assert with_header[: len(without)] == list(without)
    return with_header[len(without) :]


def decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


# ----------------------------------------------------------------------------------------------------------
# Config and templates


def test_template_defaults_are_the_released_yaml_strings():
    t = PeerTemplates()
    assert t.solution == "\nCorrect solution:\n\n{peer}"
    assert t.another_solution == "\nAnother successful solution:\n\n{peer}"
    assert t.failure == "\nA known failed solution (avoid repeating this mistake):\n\n{peer}"
    assert t.feedback == "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}"
    assert t.closing == CLOSING
    assert t.truncation_marker == MARKER


def test_config_defaults_are_mopd_2s1f():
    cfg = PeerConfig()
    assert (cfg.mode, cfg.num_success, cfg.num_failure, cfg.failure_condition) == (
        "contrastive",
        2,
        1,
        "always",
    )
    # No per-peer cap: peers are whole at the paper's sizes (4096-token responses), as released.
    assert (cfg.max_peer_tokens, cfg.max_prompt_tokens) == (None, 10240)
    assert cfg.templates == PeerTemplates()


@pytest.mark.parametrize(
    "field, value",
    [("solution", "no placeholder"), ("failure", "{peer} twice {peer}"), ("feedback", "uses {peer} instead")],
)
def test_templates_need_their_placeholder_exactly_once(field, value):
    with pytest.raises(ValueError, match=field):
        PeerTemplates(**{field: value})


def test_templates_reject_non_strings():
    with pytest.raises(TypeError, match="closing"):
        PeerTemplates(closing=None)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mode": "sdpo"}, ValueError, "unknown mode"),
        ({"failure_condition": "sometimes"}, ValueError, "unknown failure_condition"),
        ({"selection": "longest"}, ValueError, "unknown selection"),
        ({"num_success": -1}, ValueError, ">= 0"),
        ({"num_failure": -2}, ValueError, ">= 0"),
        ({"mode": "positive", "num_success": 0}, ValueError, "positive"),
        ({"mode": "contrastive", "num_failure": 0}, ValueError, "contrastive"),
        ({"max_peer_tokens": 8}, ValueError, "max_peer_tokens"),
        ({"max_prompt_tokens": 10}, ValueError, "max_prompt_tokens"),
        ({"success_threshold": math.nan}, ValueError, "finite"),
        ({"success_threshold": "1.0"}, TypeError, "success_threshold"),
        ({"num_success": 1.5}, TypeError, "num_success"),
        ({"num_failure": True}, TypeError, "num_failure"),
        ({"strip_thinking": "yes"}, TypeError, "strip_thinking"),
        ({"templates": "ChatML"}, TypeError, "templates"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        PeerConfig(**kwargs)


def test_config_accepts_failure_only_contrastive_and_mapping_templates():
    cfg = PeerConfig(num_success=0, num_failure=2, templates={"closing": "\n\nNow solve it."})
    assert cfg.templates == PeerTemplates(closing="\n\nNow solve it.")


def test_config_is_frozen_and_hashable():
    cfg = PeerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mode = "none"
    assert hash(cfg) == hash(PeerConfig())


def test_is_success_uses_threshold_inclusively():
    cfg = PeerConfig(success_threshold=0.5)
    assert is_success(0.5, cfg) and is_success(1, cfg) and is_success(np.float32(0.7), cfg)
    assert not is_success(0.49, cfg)
    assert not is_success(math.nan, cfg)


# ----------------------------------------------------------------------------------------------------------
# Peer selection

SCORES = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_first_selection_takes_group_order_and_skips_self():
    cfg = PeerConfig(selection="first")
    group = make_group(SCORES)
    assert dataclasses.asdict(select_peers(group, 0, cfg, "u")) == {"successes": [2, 3], "failures": [1]}
    assert dataclasses.asdict(select_peers(group, 2, cfg, "u")) == {"successes": [0, 3], "failures": [1]}
    assert dataclasses.asdict(select_peers(group, 1, cfg, "u")) == {"successes": [0, 2], "failures": [4]}


def test_shortest_selection_orders_by_response_tokens_then_index():
    lengths = [9, 4, 3, 3, 1, 7, 2, 3]
    group = [member(f"r{j}", s, n_ids=n) for j, (s, n) in enumerate(zip(SCORES, lengths))]
    cfg = PeerConfig(selection="shortest", num_success=3, num_failure=2)
    sel = select_peers(group, 2, cfg, "u")
    assert sel.successes == [3, 7, 5]
    assert sel.failures == [4, 6]


def test_random_selection_is_pinned_and_independent_of_python_hash_seed():
    code = (
        "from recipe.mopd.peers import GroupMember, PeerConfig, select_peers\n"
        "g = [GroupMember(f'r{j}', [0] * (j % 3 + 1), float(j % 2 == 0)) for j in range(8)]\n"
        "cfg = PeerConfig(num_success=2, num_failure=2, seed=7)\n"
        "sel = [select_peers(g, i, cfg, 'prompt-17') for i in (0, 1, 5)]\n"
        "print([(s.successes, s.failures) for s in sel])\n"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
        )
        outputs.add(proc.stdout.strip())
    # Pinned so that a change of the hash or RNG scheme (which would reshuffle every run's peers) is noticed.
    assert outputs == {"[([6, 4], [5, 1]), ([0, 6], [7, 3]), ([4, 0], [7, 1])]"}


def test_random_selection_varies_with_uid_rollout_and_seed():
    group = make_group(SCORES)
    cfg = PeerConfig()
    by_uid = {tuple(select_peers(group, 1, cfg, f"uid-{n}").successes) for n in range(40)}
    by_rollout = {tuple(select_peers(group, i, cfg, "uid").successes) for i in (1, 4, 6)}
    by_seed = {tuple(select_peers(group, 1, PeerConfig(seed=s), "uid").successes) for s in range(40)}
    assert len(by_uid) > 5 and len(by_seed) > 5
    assert len(by_rollout) > 1


def test_random_failure_draw_does_not_depend_on_num_success():
    group = make_group(SCORES)
    failures = {tuple(select_peers(group, 0, PeerConfig(num_success=k), "u").failures) for k in range(4)}
    assert len(failures) == 1


def test_when_no_success_attaches_failures_only_without_a_success_peer():
    cfg = PeerConfig(failure_condition="when_no_success", selection="first")
    assert select_peers(make_group([1, 0, 1]), 0, cfg, "u").failures == []
    # Rollout 0 is the only success, so its context has no success peer.
    assert dataclasses.asdict(select_peers(make_group([1, 0, 0]), 0, cfg, "u")) == {
        "successes": [],
        "failures": [1],
    }


def test_positive_mode_never_selects_failures_and_none_mode_selects_nothing():
    group = make_group(SCORES)
    assert select_peers(group, 0, PeerConfig(mode="positive"), "u").failures == []
    assert dataclasses.asdict(select_peers(group, 0, PeerConfig(mode="none"), "u")) == {
        "successes": [],
        "failures": [],
    }


def test_failure_only_contrastive():
    sel = select_peers(
        make_group(SCORES), 0, PeerConfig(num_success=0, num_failure=2, selection="first"), "u"
    )
    assert dataclasses.asdict(sel) == {"successes": [], "failures": [1, 4]}


def test_select_peers_rejects_out_of_range_index():
    with pytest.raises(IndexError):
        select_peers(make_group([1, 0]), 2, PeerConfig(), "u")


# ----------------------------------------------------------------------------------------------------------
# Rendering


def test_2s1f_context_matches_released_rendering(chatml_tokenizer):
    tok = chatml_tokenizer
    group = make_group([0.0, 1.0, 0.0, 1.0, 1.0])
    ctx = build_teacher_context(tok, PROMPT, group, 0, PeerConfig(selection="first"), "u", NO_THINK)
    expected_user = (
        QUESTION
        + "\nCorrect solution:\n\nresponse 1 says 5051"
        + "\nAnother successful solution:\n\nresponse 3 says 5053"
        + "\nA known failed solution (avoid repeating this mistake):\n\nresponse 2 says 5052"
        + CLOSING
    )
    assert ctx.messages == [PROMPT[0], {"role": "user", "content": expected_user}]
    assert ctx.prompt_ids == render(tok, ctx.messages, **NO_THINK)
    assert ctx.num_tokens == len(ctx.prompt_ids)
    assert (ctx.num_success_peers, ctx.num_failure_peers) == (2, 1)
    assert not (ctx.used_feedback or ctx.masked or ctx.truncated)
    assert decode(tok, ctx.prompt_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_generation_header_follows_chat_template_kwargs(chatml_tokenizer):
    group = make_group([0.0, 1.0])
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(), "u")
    assert decode(chatml_tokenizer, ctx.prompt_ids).endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_earlier_turns_are_kept_and_only_the_last_user_message_is_extended(chatml_tokenizer):
    prompt = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": QUESTION, "name": "alice"},
    ]
    ctx = build_teacher_context(chatml_tokenizer, prompt, make_group([0, 1]), 0, PeerConfig(), "u")
    assert ctx.messages[:3] == prompt[:3]
    assert ctx.messages[3]["name"] == "alice"
    assert ctx.messages[3]["content"].startswith(QUESTION + "\nCorrect solution:")
    assert prompt[3]["content"] == QUESTION


def test_positive_mode_uses_solution_then_another_solution_templates(chatml_tokenizer):
    ctx = build_teacher_context(
        chatml_tokenizer,
        PROMPT,
        make_group([0, 1, 0, 1, 1]),
        0,
        PeerConfig(mode="positive", num_success=3, selection="first"),
        "u",
    )
    content = ctx.messages[-1]["content"]
    assert content == (
        QUESTION
        + "\nCorrect solution:\n\nresponse 1 says 5051"
        + "\nAnother successful solution:\n\nresponse 3 says 5053"
        + "\nAnother successful solution:\n\nresponse 4 says 5054"
        + CLOSING
    )
    assert "failed" not in content


def test_contrastive_with_no_failures_in_group_is_success_only(chatml_tokenizer):
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, make_group([1, 1, 1]), 0, PeerConfig(), "u")
    assert (ctx.num_success_peers, ctx.num_failure_peers, ctx.masked) == (2, 0, False)


def test_multiple_failures_each_use_the_failure_template(chatml_tokenizer):
    cfg = PeerConfig(num_success=0, num_failure=2, selection="first")
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, make_group([1, 0, 0, 1]), 0, cfg, "u")
    assert ctx.messages[-1]["content"].count("A known failed solution") == 2


def test_own_feedback_is_used_only_without_a_success_peer(chatml_tokenizer):
    tok = chatml_tokenizer
    fb = {0: "Test 3 failed: expected 7, got 9", 1: "feedback of rollout 1"}
    header = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
    # Only failures besides rollout 0: its own feedback is attached after the failed peer.
    ctx = build_teacher_context(tok, PROMPT, make_group([0, 0], fb), 0, PeerConfig(selection="first"), "u")
    assert ctx.used_feedback
    assert ctx.messages[-1]["content"] == (
        QUESTION
        + "\nA known failed solution (avoid repeating this mistake):\n\nresponse 1 says 5051"
        + header
        + fb[0]
        + CLOSING
    )
    # A success peer exists: no feedback.
    ctx = build_teacher_context(tok, PROMPT, make_group([0, 1], fb), 0, PeerConfig(), "u")
    assert not ctx.used_feedback and header not in ctx.messages[-1]["content"]
    # Feedback switched off.
    ctx = build_teacher_context(tok, PROMPT, make_group([0, 0], fb), 0, PeerConfig(use_feedback=False), "u")
    assert not ctx.used_feedback and header not in ctx.messages[-1]["content"]
    contexts = build_group_contexts(tok, PROMPT, make_group([0, 0, 0], fb), PeerConfig(), "u")
    for i, ctx in enumerate(contexts):
        for j, text in fb.items():
            assert (text in ctx.messages[-1]["content"]) == (i == j)


def test_feedback_alone_is_a_context_in_positive_mode(chatml_tokenizer):
    group = make_group([0, 0], {0: "wrong format"})
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(mode="positive"), "u")
    assert (ctx.masked, ctx.used_feedback, ctx.num_success_peers) == (False, True, 0)


@pytest.mark.parametrize("feedback", ["", "  \n\t "])
def test_no_peer_and_no_feedback_masks_the_sample_with_the_plain_prompt(chatml_tokenizer, feedback):
    tok = chatml_tokenizer
    group = make_group([0, 0, 0], {0: feedback})
    ctx = build_teacher_context(tok, PROMPT, group, 0, PeerConfig(mode="positive"), "u", NO_THINK)
    assert ctx.masked and not ctx.used_feedback
    assert ctx.prompt_ids == render(tok, PROMPT, **NO_THINK)
    assert ctx.messages == PROMPT
    # The only success in its group has no success peer and no failure peer in a group of one.
    ctx = build_teacher_context(tok, PROMPT, make_group([1]), 0, PeerConfig(), "u")
    assert ctx.masked


def test_mode_none_is_plain_opd_and_never_masked(chatml_tokenizer):
    tok = chatml_tokenizer
    group = make_group([0, 1, 0], {0: "feedback"})
    for ctx in build_group_contexts(tok, PROMPT, group, PeerConfig(mode="none"), "u", NO_THINK):
        assert ctx.prompt_ids == render(tok, PROMPT, **NO_THINK)
        assert not ctx.masked and ctx.num_success_peers == ctx.num_failure_peers == 0


def test_peer_text_is_inserted_verbatim(chatml_tokenizer):
    tricky = "def f(x):\n    return {'peer': x}  # {peer} {feedback} {0} ünï 😀"
    group = [member("mine", 0.0), member(tricky, 1.0)]
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(), "u")
    assert ctx.messages[-1]["content"] == QUESTION + "\nCorrect solution:\n\n" + tricky + CLOSING


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>\nplan\n</think>\n\nAnswer: 4", "Answer: 4"),
        ("A <think>x</think> B <think>y\n</think> C", "A B C"),
        ("reasoning whose opener was in the prompt</think>\nAnswer: 4", "Answer: 4"),
        ("Answer: 4\n<think>cut off mid-thought", "Answer: 4"),
        ("no thinking here", "no thinking here"),
        ("<think>only thoughts</think>", ""),
    ],
)
def test_strip_thinking(text, expected):
    assert strip_thinking(text) == expected


def test_strip_thinking_option_applies_to_peers_only(chatml_tokenizer):
    group = [member("<think>mine</think>x", 0.0), member("<think>secret plan</think>\nAnswer: 5050", 1.0)]
    content = build_teacher_context(
        chatml_tokenizer, PROMPT, group, 0, PeerConfig(strip_thinking=True), "u"
    ).messages[-1]["content"]
    assert content == QUESTION + "\nCorrect solution:\n\nAnswer: 5050" + CLOSING
    kept = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(), "u").messages[-1][
        "content"
    ]
    assert "<think>secret plan</think>" in kept


class _WrappedTokenizer:
    """A tokenizer whose apply_chat_template returns another container type."""

    def __init__(self, tok, convert):
        self._tok = tok
        self._convert = convert

    def apply_chat_template(self, *args, **kwargs):
        return self._convert(
            render(
                self._tok,
                *args,
                **{k: v for k, v in kwargs.items() if k not in ("tokenize", "add_generation_prompt")},
            )
        )

    def encode(self, *args, **kwargs):
        return self._tok.encode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self._tok.decode(*args, **kwargs)


@pytest.mark.parametrize(
    "convert",
    [
        lambda ids: ids,
        lambda ids: [ids],
        lambda ids: torch.tensor([ids]),
        lambda ids: np.array(ids),
        lambda ids: {"input_ids": ids, "attention_mask": [1] * len(ids)},
    ],
    ids=["list", "batch_of_one", "tensor", "ndarray", "dict"],
)
def test_any_apply_chat_template_return_type_gives_a_plain_id_list(chatml_tokenizer, convert):
    group = make_group([0, 1, 0])
    expected = build_teacher_context(
        chatml_tokenizer, PROMPT, group, 0, PeerConfig(), "u", NO_THINK
    ).prompt_ids
    wrapped = _WrappedTokenizer(chatml_tokenizer, convert)
    ids = build_teacher_context(wrapped, PROMPT, group, 0, PeerConfig(), "u", NO_THINK).prompt_ids
    assert ids == expected and all(type(t) is int for t in ids)


def test_batched_chat_template_output_is_rejected(chatml_tokenizer):
    wrapped = _WrappedTokenizer(chatml_tokenizer, lambda ids: [ids, ids])
    with pytest.raises(ValueError, match="batch of 2"):
        build_teacher_context(wrapped, PROMPT, make_group([0, 1]), 0, PeerConfig(), "u")


def test_numpy_object_array_prompt_is_accepted(chatml_tokenizer):
    prompt = np.array(PROMPT, dtype=object)
    ctx = build_teacher_context(chatml_tokenizer, prompt, make_group([0, 1]), 0, PeerConfig(), "u")
    assert ctx.messages[0] == PROMPT[0]


@pytest.mark.parametrize(
    "prompt, error",
    [
        ([], ValueError),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "prefill"}], ValueError),
        ([{"role": "user", "content": [{"type": "text", "text": "q"}]}], TypeError),
    ],
)
def test_malformed_prompts_are_rejected(chatml_tokenizer, prompt, error):
    with pytest.raises(error):
        build_teacher_context(chatml_tokenizer, prompt, make_group([0, 1]), 0, PeerConfig(), "u")
    with pytest.raises(error):
        build_group_contexts(chatml_tokenizer, prompt, make_group([0, 1]), PeerConfig(mode="none"), "u")


def test_group_contexts_equal_single_contexts(chatml_tokenizer):
    group = make_group(SCORES, {1: "fb one", 4: "fb four"})
    for cfg in (
        PeerConfig(),
        PeerConfig(mode="positive", failure_condition="when_no_success"),
        PeerConfig(mode="none"),
        PeerConfig(selection="shortest", max_prompt_tokens=200),
    ):
        together = build_group_contexts(chatml_tokenizer, PROMPT, group, cfg, "u", NO_THINK)
        alone = [
            build_teacher_context(chatml_tokenizer, PROMPT, group, i, cfg, "u", NO_THINK)
            for i in range(len(group))
        ]
        assert together == alone


# ----------------------------------------------------------------------------------------------------------
# Budgets

LONG_BODY = " ".join(f"step {n}: x = x * 2 + {n}" for n in range(60)) + "\nFinal answer: 5050"


def test_long_peer_keeps_its_end_behind_the_marker(chatml_tokenizer):
    tok = chatml_tokenizer
    group = [member("mine", 0.0), member(LONG_BODY, 1.0), member("short failure", 0.0)]
    cfg = PeerConfig(max_peer_tokens=40, selection="first")
    ctx = build_teacher_context(tok, PROMPT, group, 0, cfg, "u")
    content = ctx.messages[-1]["content"]
    prefix = QUESTION + "\nCorrect solution:\n\n" + MARKER
    suffix = "\nA known failed solution (avoid repeating this mistake):\n\nshort failure" + CLOSING
    assert ctx.truncated
    assert content.startswith(prefix) and content.endswith(suffix)
    kept = content[len(prefix) : -len(suffix)]
    assert kept and LONG_BODY.endswith(kept) and kept.endswith("Final answer: 5050")
    assert len(tok.encode(MARKER + kept, add_special_tokens=False)) <= 40 + 2


def test_prompt_budget_shrinks_the_longest_peer_first(chatml_tokenizer):
    tok = chatml_tokenizer
    group = [
        member("mine", 0.0),
        member(LONG_BODY, 1.0),
        member(LONG_BODY[::-1], 1.0),
        member("short failure", 0.0),
    ]
    free = build_teacher_context(tok, PROMPT, group, 0, PeerConfig(selection="first"), "u", NO_THINK)
    assert free.num_tokens > 300
    budget = 300
    ctx = build_teacher_context(
        tok, PROMPT, group, 0, PeerConfig(selection="first", max_prompt_tokens=budget), "u", NO_THINK
    )
    content = ctx.messages[-1]["content"]
    assert ctx.truncated and ctx.num_tokens <= budget
    assert budget - ctx.num_tokens < 40, "shrinking should not throw away much more than the excess"
    assert content.count(MARKER) == 2
    assert content.startswith(QUESTION) and content.endswith("short failure" + CLOSING)
    assert ctx.prompt_ids[-len(header_ids(tok, **NO_THINK)) :] == header_ids(tok, **NO_THINK)


def test_long_feedback_is_cut_to_the_peer_budget(chatml_tokenizer):
    group = make_group([0, 0], {0: LONG_BODY})
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(max_peer_tokens=32), "u")
    content = ctx.messages[-1]["content"]
    assert ctx.used_feedback and ctx.truncated
    assert MARKER in content and content.endswith("Final answer: 5050" + CLOSING)


def test_overflow_when_the_question_alone_does_not_fit(chatml_tokenizer):
    tok = chatml_tokenizer
    prompt = [{"role": "user", "content": LONG_BODY}]
    cfg = PeerConfig(max_prompt_tokens=64)
    with pytest.raises(TeacherContextOverflow) as info:
        build_teacher_context(tok, prompt, make_group([0, 1]), 0, cfg, "u")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.max_prompt_tokens == 64 and err.required_tokens > 64
    assert "max_prompt_tokens=64" in str(err) and str(err.required_tokens) in str(err)
    assert "PeerConfig.max_prompt_tokens" in str(err)
    # The plain prompt is held to the same budget, masked or not.
    for mode_cfg in (
        PeerConfig(mode="none", max_prompt_tokens=64),
        PeerConfig(mode="positive", max_prompt_tokens=64),
    ):
        with pytest.raises(TeacherContextOverflow):
            build_teacher_context(tok, prompt, make_group([0, 0]), 0, mode_cfg, "u")


# ----------------------------------------------------------------------------------------------------------
# Properties over random groups and configs

# Words rather than characters so that think tags, braces and multi-byte characters appear often.
_WORDS = st.sampled_from(
    [
        "a",
        "xyz ",
        " ",
        "\n",
        "{",
        "}",
        "{peer}",
        "42",
        "<think>",
        "</think>",
        "Final answer: ",
        "ü",
        "😀",
        "def f(x):",
        "step 1 = x * 2 + 1. ",
    ]
)
# Long texts are drawn explicitly: hypothesis favours short lists, which would rarely hit a budget.
_TEXT = st.one_of(st.lists(_WORDS, max_size=10), st.lists(_WORDS, min_size=20, max_size=80)).map("".join)
_QUESTION = st.one_of(st.lists(_WORDS, max_size=10), st.lists(_WORDS, min_size=30, max_size=80)).map(
    lambda words: "Q: " + "".join(words)
)
_MEMBER = st.builds(
    lambda text, n_ids, score, feedback: GroupMember(text, list(range(n_ids)), score, feedback),
    _TEXT,
    st.integers(0, 50),
    st.sampled_from([0.0, 0.5, 1.0, 1.0, math.nan, math.inf, None]),
    st.one_of(st.just(""), _TEXT),
)


@st.composite
def _configs(draw):
    mode = draw(st.sampled_from(["none", "positive", "contrastive"]))
    return PeerConfig(
        mode=mode,
        num_success=draw(st.integers(1 if mode == "positive" else 0, 3)),
        num_failure=draw(st.integers(1 if mode == "contrastive" else 0, 3)),
        failure_condition=draw(st.sampled_from(["always", "when_no_success"])),
        success_threshold=draw(st.sampled_from([0.5, 1.0])),
        selection=draw(st.sampled_from(["random", "shortest", "first"])),
        strip_thinking=draw(st.booleans()),
        use_feedback=draw(st.booleans()),
        max_peer_tokens=draw(st.one_of(st.none(), st.integers(16, 80))),
        max_prompt_tokens=draw(st.one_of(st.integers(64, 160), st.integers(160, 600))),
        seed=draw(st.integers(0, 3)),
    )


_PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY_SETTINGS
@given(
    group=st.lists(_MEMBER, min_size=1, max_size=8), cfg=_configs(), uid=st.text(max_size=12), data=st.data()
)
def test_selection_properties(group, cfg, uid, data):
    i = data.draw(st.integers(0, len(group) - 1))
    sel = select_peers(group, i, cfg, uid)
    chosen = sel.successes + sel.failures
    assert i not in chosen
    assert len(set(chosen)) == len(chosen)
    assert all(is_valid_score(group[j].score) for j in chosen)
    assert all(is_success(group[j].score, cfg) for j in sel.successes)
    assert not any(is_success(group[j].score, cfg) for j in sel.failures)
    assert len(sel.successes) <= cfg.num_success and len(sel.failures) <= cfg.num_failure
    if cfg.mode != "contrastive" or (cfg.failure_condition == "when_no_success" and sel.successes):
        assert sel.failures == []
    if cfg.mode == "none" or not is_valid_score(group[i].score):
        assert sel.successes == [] and sel.failures == []
        return
    available = sum(is_valid_score(m.score) and is_success(m.score, cfg) for j, m in enumerate(group) if j != i)
    assert len(sel.successes) == min(cfg.num_success, available)
    assert select_peers(group, i, cfg, uid) == sel


@_PROPERTY_SETTINGS
@given(
    group=st.lists(_MEMBER, min_size=1, max_size=8),
    cfg=_configs(),
    question=_QUESTION,
    uid=st.text(max_size=12),
    thinking=st.booleans(),
    data=st.data(),
)
def test_context_properties(chatml_tokenizer, group, cfg, question, uid, thinking, data):
    tok = chatml_tokenizer
    i = data.draw(st.integers(0, len(group) - 1))
    kwargs = {"enable_thinking": thinking}
    prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": question}]
    try:
        ctx = build_teacher_context(tok, prompt, group, i, cfg, uid, kwargs)
    except TeacherContextOverflow as err:
        # Every teacher prompt contains the plain prompt, so that much is the least it can need.
        assert err.required_tokens > cfg.max_prompt_tokens
        assert err.required_tokens >= len(render(tok, prompt, **kwargs))
        return
    sel = select_peers(group, i, cfg, uid)
    assert ctx.num_tokens == len(ctx.prompt_ids) <= cfg.max_prompt_tokens
    assert ctx.prompt_ids == render(tok, ctx.messages, **kwargs)
    header = header_ids(tok, **kwargs)
    assert ctx.prompt_ids[-len(header) :] == header
    assert ctx.messages[0] == prompt[0]
    content = ctx.messages[-1]["content"]
    assert content.startswith(question)
    assert question in decode(tok, ctx.prompt_ids)
    assert (ctx.num_success_peers, ctx.num_failure_peers) == (len(sel.successes), len(sel.failures))
    if not is_valid_score(group[i].score):
        assert ctx.masked and ctx.messages == prompt and not ctx.used_feedback
        return
    failed = group[i].score < cfg.success_threshold
    has_feedback = failed and bool(group[i].feedback.strip()) and cfg.use_feedback and not sel.successes
    assert ctx.used_feedback == (has_feedback and cfg.mode != "none")
    attached = bool(sel.successes or sel.failures or ctx.used_feedback)
    assert ctx.masked == (cfg.mode != "none" and not attached)
    if attached:
        assert content.endswith(cfg.templates.closing)
    else:
        assert ctx.messages == prompt and not ctx.truncated


def test_successful_rollout_never_gets_the_unsuccessful_attempt_feedback(chatml_tokenizer):
    cfg = PeerConfig(mode="positive", num_success=1)
    group = [
        GroupMember(response_text="right", response_ids=[1], score=1.0, feedback="Correct."),
        GroupMember(response_text="wrong", response_ids=[2], score=0.0, feedback="Wrong answer."),
    ]
    lone_success = build_teacher_context(chatml_tokenizer, [{"role": "user", "content": "Q?"}], group, 0, cfg, "u")
    assert not lone_success.used_feedback and lone_success.masked
    failed = build_teacher_context(chatml_tokenizer, [{"role": "user", "content": "Q?"}], group, 1, cfg, "u")
    assert failed.num_success_peers == 1 and not failed.used_feedback


# ----------------------------------------------------------------------------------------------------------
# Invalid scores and the per-peer cap


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_invalid_scores_are_neither_success_nor_failure_peers(bad):
    assert not is_valid_score(bad) and is_valid_score(0.0) and is_valid_score(np.float32(1.0))
    group = make_group([1.0, bad, 0.0, 1.0, bad, 0.0])
    for selection in ("first", "random", "shortest"):
        cfg = PeerConfig(selection=selection, num_success=3, num_failure=3)
        for i in (0, 2, 3, 5):
            sel = select_peers(group, i, cfg, "u")
            assert 1 not in sel.successes + sel.failures and 4 not in sel.successes + sel.failures
            assert sorted(sel.successes + sel.failures) == sorted({0, 2, 3, 5} - {i})


@pytest.mark.parametrize("mode", ["contrastive", "positive", "none"])
def test_a_rollout_with_an_invalid_score_is_masked_in_every_mode(chatml_tokenizer, mode):
    group = make_group([1.0, math.nan, 0.0, 1.0], {1: "Test 3 failed"})
    cfg = PeerConfig(mode=mode, num_success=1, num_failure=1 if mode == "contrastive" else 0)
    contexts = build_group_contexts(chatml_tokenizer, PROMPT, group, cfg, "u")
    assert contexts[1].masked and contexts[1].messages == PROMPT and not contexts[1].used_feedback
    assert not any(contexts[i].masked for i in (0, 2, 3))


def test_without_a_peer_cap_a_response_length_peer_stays_whole(chatml_tokenizer):
    group = [member("mine", 0.0), member(LONG_BODY, 1.0), member("short failure", 0.0)]
    assert len(chatml_tokenizer.encode(LONG_BODY, add_special_tokens=False)) > 300
    ctx = build_teacher_context(chatml_tokenizer, PROMPT, group, 0, PeerConfig(selection="first"), "u")
    assert not ctx.truncated and LONG_BODY in ctx.messages[-1]["content"]
    # The whole-prompt budget still cuts peers, never the question, closing line or header.
    tight = build_teacher_context(
        chatml_tokenizer, PROMPT, group, 0, PeerConfig(selection="first", max_prompt_tokens=200), "u", NO_THINK
    )
    content = tight.messages[-1]["content"]
    assert tight.truncated and tight.num_tokens <= 200
    assert content.startswith(QUESTION) and content.endswith(CLOSING)
    assert tight.prompt_ids[-len(header_ids(chatml_tokenizer, **NO_THINK)) :] == header_ids(
        chatml_tokenizer, **NO_THINK
    )
