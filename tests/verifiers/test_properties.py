"""Property tests: arbitrary model output never breaks a verifier, and the comparators are sane."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.code.compare import stdout_matches
from verifiers.math_verifier import extract_boxed
from verifiers.result import RESULT_KEYS
from verifiers.tool import Normalization, canonical
from verifiers.verl_reward import compute_score

# Text rich in the characters the parsers care about.
model_text = st.lists(
    st.sampled_from(
        list("abAC{}()[]\\$:<>/\"',.\n 0123456789") + ["\\boxed", "<think>", "</think>", "Action:", "Answer:"]
    )
).map("".join)


@settings(max_examples=300, deadline=None)
@given(model_text)
def test_science_and_tool_never_raise_on_model_output(text):
    for data_source, gold in (("science/x", "A"), ("tool/x", json.dumps([{"name": "f", "arguments": {}}]))):
        assert tuple(compute_score(data_source, text, gold)) == RESULT_KEYS


@settings(max_examples=300, deadline=None)
@given(model_text)
def test_math_extraction_never_raises(text):
    extract_boxed(text)


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=50))
def test_boxed_content_round_trips(content):
    assert extract_boxed(f"so \\boxed{{{content}}} done") == content.strip()


@given(st.text(alphabet=st.sampled_from(list("0123456789 .-\nab")), max_size=60))
def test_stdout_matches_itself_and_ignores_surrounding_whitespace(text):
    assert stdout_matches(text, text)
    assert stdout_matches(f"  {text}\n\n", text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_form_is_idempotent(value):
    rules = Normalization()
    once = canonical(value, rules)
    assert canonical(once, rules) == once
