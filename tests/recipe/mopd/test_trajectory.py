"""Multi-turn episodes as peers: turns from the response mask, the template's tool wrapping, rendering,
budgets (tool results cut first) and the peer sections built from episodes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verl.utils.tokenizer.continuous_token import QwenContinuousTokenBuilder

from recipe.mopd.peers import GroupMember, PeerConfig, PeerTemplates, build_group_contexts
from recipe.mopd.trajectory import (
    EpisodeTemplates,
    ToolTurnFormat,
    Turn,
    episode_turns,
    fit_episode,
    is_multi_turn,
    render_episode,
    split_by_mask,
)

MARKER = "\n[... truncated ...]\n"
TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two integers."}}]
QUESTION = "What is 13 + 25?"

# A Qwen2.5-shaped template written for this test: tool results go into one user turn as
# <tool_response> blocks, assistant tool calls as <tool_call> JSON.
GROUPED_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<tool_call>' + call.function.name + '</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

REJECTING_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}{{ raise_exception('no tools') }}{%- endif %}"
    "{{ message.content }}"
    "{%- endfor %}"
)


def _with_template(tokenizer, template):
    clone = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|im_end|>")
    clone.chat_template = template
    return clone


def _ids(tok, text):
    return list(tok.encode(text, add_special_tokens=False))


def test_split_by_mask_returns_maximal_runs_by_role():
    runs = split_by_mask([5, 6, 7, 8, 9, 10], [1, 1, 0, 0, 1, 0])
    assert runs == [("assistant", [5, 6]), ("tool", [7, 8]), ("assistant", [9]), ("tool", [10])]
    assert split_by_mask([], []) == []
    assert split_by_mask([3], [0]) == [("tool", [3])]


def test_split_by_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="2 tokens but response_mask has 3"):
        split_by_mask([1, 2], [1, 1, 0])
    with pytest.raises(ValueError, match="0 or 1, got 2"):
        split_by_mask([1, 2], [1, 2])


def test_is_multi_turn_needs_a_context_token():
    assert is_multi_turn([1, 0, 1])
    assert not is_multi_turn([1, 1])
    assert not is_multi_turn([])
    assert not is_multi_turn(None)


def test_turn_and_templates_validate():
    with pytest.raises(ValueError, match="turn role"):
        Turn("user", "x")
    with pytest.raises(TypeError, match="turn text"):
        Turn("tool", 3)
    with pytest.raises(ValueError, match="exactly once"):
        EpisodeTemplates(assistant="no placeholder")
    with pytest.raises(ValueError, match="exactly once"):
        PeerTemplates(tool_turn="{text}{text}")
    assert PeerTemplates(tool_turn="Tool: {text}\n").episode.tool == "Tool: {text}\n"


def test_tool_format_of_a_chatml_template(chatml_tokenizer):
    fmt = ToolTurnFormat.from_tokenizer(chatml_tokenizer)
    assert fmt == ToolTurnFormat(
        prefix="<|im_start|>tool\n",
        joiner="<|im_end|>\n<|im_start|>tool\n",
        suffix="<|im_end|>\n<|im_start|>assistant\n",
    )
    # chat-template kwargs reach the generation header
    no_think = ToolTurnFormat.from_tokenizer(chatml_tokenizer, {"enable_thinking": False})
    assert no_think.suffix == "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_tool_format_of_a_grouping_template(chatml_tokenizer):
    fmt = ToolTurnFormat.from_tokenizer(_with_template(chatml_tokenizer, GROUPED_TEMPLATE))
    assert fmt.prefix == "<|im_start|>user\n<tool_response>\n"
    assert fmt.joiner == "\n</tool_response>\n<tool_response>\n"
    assert fmt.suffix == "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    segment = "\n" + fmt.prefix + "38" + fmt.joiner + '{"error": "x"}' + fmt.suffix
    assert fmt.contents(segment) == ["38", '{"error": "x"}']


def test_tool_format_is_none_for_a_template_without_tools(chatml_tokenizer):
    assert ToolTurnFormat.from_tokenizer(_with_template(chatml_tokenizer, REJECTING_TEMPLATE)) is None


def test_tool_format_contents_rejects_foreign_segments():
    fmt = ToolTurnFormat(prefix="<a>\n", joiner="</a><a>", suffix="</a>\nNEXT")
    assert fmt.contents("  <a>\n38</a>\nNEXT") == ["38"]
    assert fmt.contents("<a>\n</a>\nNEXT") == [""]
    assert fmt.contents("<b>\n38</a>\nNEXT") is None
    assert fmt.contents("<a>\n38</a>\n") is None  # cut before the next generation header
    assert fmt.contents("<a>\nNEXT") is None  # prefix and suffix would overlap
    assert ToolTurnFormat("<a>", "", "</a>").contents("<a>1</a>") == ["1"]


def _rollout(tok, calls, results, answer):
    """A response laid out exactly as verl's tool_agent loop lays it out for a Qwen-family model: policy
    tokens (mask 1) and, between them, the Continuous Token context segments (mask 0)."""
    builder = QwenContinuousTokenBuilder(tok)
    messages = [{"role": "user", "content": QUESTION}]
    prompt = builder.build_initial_tokens(messages, tools=TOOLS)
    runtime, mask = list(prompt), []
    for call, result in zip(calls, results):
        turn = _ids(tok, call) + [tok.eos_token_id]
        runtime += turn
        mask += [1] * len(turn)
        before = messages + [{"role": "assistant", "content": call}]
        after = before + [{"role": "tool", "content": result}]
        merged = builder.merge_context_tokens(before, after, runtime, tools=TOOLS)
        added = len(merged.token_ids) - len(runtime)
        runtime, mask, messages = merged.token_ids, mask + [0] * added, after
    final = _ids(tok, answer) + [tok.eos_token_id]
    runtime += final
    mask += [1] * len(final)
    return prompt, runtime[len(prompt) :], mask


def test_episode_turns_of_a_real_tool_agent_layout(chatml_tokenizer):
    tok = chatml_tokenizer
    call = '<tool_call>{"name": "add", "arguments": {"a": 13, "b": 25}}</tool_call>'
    _, response, mask = _rollout(tok, [call, call], ["38", "38"], "The answer is \\boxed{38}.")
    assert mask[0] == 1 and 0 in mask
    turns = episode_turns(tok, response, mask, ToolTurnFormat.from_tokenizer(tok))
    assert turns == [
        Turn("assistant", call),
        Turn("tool", "38"),
        Turn("assistant", call),
        Turn("tool", "38"),
        Turn("assistant", "The answer is \\boxed{38}."),
    ]
    # without a known format a context segment is shown as its text without special tokens
    fallback = episode_turns(tok, response, mask, None)
    assert [t.role for t in fallback] == [t.role for t in turns]
    assert fallback[1].text == "tool\n38\nassistant"


def test_render_episode_marks_roles_and_can_drop_tool_results():
    turns = [Turn("assistant", "call add"), Turn("tool", "38"), Turn("assistant", "\\boxed{38}")]
    tpl = EpisodeTemplates()
    assert render_episode(turns, tpl) == "[assistant]\ncall add\n[tool result]\n38\n[assistant]\n\\boxed{38}"
    assert (
        render_episode(turns, tpl, include_tool_results=False)
        == "[assistant]\ncall add\n[assistant]\n\\boxed{38}"
    )
    assert render_episode([], tpl) == ""


LONG_RESULT = "row " + " ".join(str(n) for n in range(200))
EPISODE = [
    Turn("assistant", "call add"),
    Turn("tool", LONG_RESULT),
    Turn("assistant", "call add again"),
    Turn("tool", "38"),
    Turn("assistant", "The answer is \\boxed{38}."),
]


def test_fit_episode_cuts_tool_results_first(chatml_tokenizer):
    tok, tpl = chatml_tokenizer, EpisodeTemplates()
    full = render_episode(EPISODE, tpl)
    assert fit_episode(tok, EPISODE, len(_ids(tok, full)), tpl, MARKER) == full
    cap = len(_ids(tok, full)) // 3
    text = fit_episode(tok, EPISODE, cap, tpl, MARKER)
    # every assistant turn survives whole; the long result keeps its start, behind the marker
    for turn in EPISODE:
        if turn.role == "assistant":
            assert f"[assistant]\n{turn.text}\n" in text + "\n"
    assert "[tool result]\nrow 0 1" in text
    assert "[... truncated ...]" in text and "199" not in text
    assert len(_ids(tok, text)) <= cap + 2


def test_fit_episode_then_cuts_the_front_keeping_the_answer(chatml_tokenizer):
    tok, tpl = chatml_tokenizer, EpisodeTemplates()
    text = fit_episode(tok, EPISODE, 40, tpl, MARKER)
    assert text.startswith(MARKER) and text.endswith("The answer is \\boxed{38}.")
    assert "call add\n" not in text
    assert len(_ids(tok, text)) <= 41
    assert fit_episode(tok, EPISODE, 0, tpl, MARKER) == ""
    assert fit_episode(tok, EPISODE, 3, tpl, MARKER) == ""  # below the marker's own length
    with pytest.raises(ValueError, match="cap must be >= 0"):
        fit_episode(tok, EPISODE, -1, tpl, MARKER)


def test_fit_episode_without_tool_results_never_shows_them(chatml_tokenizer):
    tok, tpl = chatml_tokenizer, EpisodeTemplates()
    for cap in (0, 10, 30, 1000):
        assert "[tool result]" not in fit_episode(tok, EPISODE, cap, tpl, MARKER, include_tool_results=False)


def _group(tok):
    call = json.dumps({"name": "add", "arguments": {"a": 13, "b": 25}})
    turns_ok = [
        Turn("assistant", f"<tool_call>{call}</tool_call>"),
        Turn("tool", "38"),
        Turn("assistant", "\\boxed{38}"),
    ]
    turns_bad = [
        Turn("assistant", "<tool_call>x</tool_call>"),
        Turn("tool", LONG_RESULT),
        Turn("assistant", "\\boxed{7}"),
    ]
    members = []
    for n, (turns, score) in enumerate(
        [(turns_ok, 1.0), (turns_ok, 1.0), (turns_bad, 0.0), (turns_bad, 0.0)]
    ):
        text = render_episode(turns, EpisodeTemplates())
        members.append(GroupMember(text, _ids(tok, text) + [n], score, turns=list(turns)))
    return members


PROMPT = [{"role": "user", "content": QUESTION}]
CLOSING = "\n\nCorrectly solve the original question."


def test_episode_peers_in_the_teacher_prompt(chatml_tokenizer):
    cfg = PeerConfig(num_success=1, num_failure=1, selection="first")
    contexts = build_group_contexts(chatml_tokenizer, PROMPT, _group(chatml_tokenizer), cfg, "u")
    content = contexts[3].messages[-1]["content"]
    assert content.startswith(QUESTION) and content.endswith(CLOSING)
    assert "Correct solution:\n\n[assistant]\n<tool_call>" in content
    assert "[tool result]\n38\n[assistant]\n\\boxed{38}" in content
    assert "A known failed solution (avoid repeating this mistake):\n\n[assistant]\n<tool_call>x" in content
    dropped = PeerConfig(num_success=1, num_failure=1, selection="first", include_tool_results=False)
    content = build_group_contexts(chatml_tokenizer, PROMPT, _group(chatml_tokenizer), dropped, "u")[
        3
    ].messages[-1]["content"]
    assert "[tool result]" not in content and "\\boxed{7}" in content


def test_episode_peer_budget_cuts_the_tool_result_not_the_answer(chatml_tokenizer):
    cfg = PeerConfig(num_success=1, num_failure=1, selection="first", max_peer_tokens=80)
    ctx = build_group_contexts(chatml_tokenizer, PROMPT, _group(chatml_tokenizer), cfg, "u")[0]
    content = ctx.messages[-1]["content"]
    assert ctx.truncated
    assert "[tool result]\nrow 0" in content and "[... truncated ...]" in content
    assert "\\boxed{7}" in content and "\\boxed{38}" not in content.split("A known failed")[1]
    assert content.startswith(QUESTION) and content.endswith(CLOSING)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(min_value=64, max_value=900), include=st.booleans())
def test_episode_contexts_always_fit_and_keep_question_and_closing(chatml_tokenizer, budget, include):
    group = _group(chatml_tokenizer)
    plain = chatml_tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    cfg = PeerConfig(num_success=1, num_failure=1, max_prompt_tokens=budget, include_tool_results=include)
    try:
        contexts = build_group_contexts(chatml_tokenizer, PROMPT, group, cfg, "u")
    except ValueError as error:  # TeacherContextOverflow: the skeleton alone does not fit
        assert "even with every peer body removed" in str(error)
        return
    assert plain
    for ctx in contexts:
        assert ctx.num_tokens == len(ctx.prompt_ids) <= budget
        content = ctx.messages[-1]["content"]
        assert content.startswith(QUESTION) and content.endswith(CLOSING)
