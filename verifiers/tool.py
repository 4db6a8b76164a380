"""Tool-call verifier: the predicted calls must equal the gold calls as a multiset.

Two response formats are read: ReAct (`Action: name` / `Action Input: {json}`, as in ToolAlpaca and
MOPD's ToolUse) and Hermes (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`). JSON is
decoded with `raw_decode`, so nested objects work (a `{.*?}` regex breaks on them).

Calls are compared per call, never merged into one dict: success iff the tool names match as a
multiset and every gold call has its own predicted call with equal arguments. Values are compared
after normalisation: "5" equals 5 and 3.0 equals 3 (`coerce_types`), surrounding and repeated
whitespace is ignored (`normalize_whitespace`), case matters unless `case_sensitive=False`, and an
argument whose value is null or "" counts as absent.

A gold call may also carry `allowed`, BFCL's possible-answer form: `{argument: [accepted values]}`, where
"" among the values means the argument may be left out, and a dict value maps its own keys to accepted
values the same way. Such a call matches a predicted call with the same name whose every argument is
one of its accepted values, and which leaves out only arguments that may be left out; its `arguments`
(one accepted combination) then serve only as an example. Calls are paired by a maximum matching, so
the order of calls never matters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifiers.errors import GroundTruthError
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.scan import tag_spans
from verifiers.thinking import final_answer_region

_TOOL_CALL_OPEN = re.compile(r"<tool_call>")
_TOOL_CALL_CLOSE = re.compile(r"</tool_call>")
_ACTION = re.compile(r"^[ \t>*#]*Action[ \t*]*:[ \t*]*(?P<name>[^\n]*)$", re.MULTILINE)
_ACTION_INPUT = re.compile(r"Action[ \t]*Input[ \t*]*:[ \t*]*", re.IGNORECASE)
_TOOL_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
# `\d+(?:\.\d*)?`, not `\d+\.?\d*`: the latter splits a digit run two ways and backtracks quadratically.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Real arguments are a few levels deep; deeper JSON would only exhaust the recursion limit below.
_MAX_ARGUMENT_DEPTH = 32
_JSON = json.JSONDecoder()


class CallFormatError(ValueError):
    """The response's tool calls cannot be read; the message is safe to show."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    allowed: dict[str, list] | None = None


@dataclass(frozen=True)
class Normalization:
    case_sensitive: bool = True
    normalize_whitespace: bool = True
    coerce_types: bool = True


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Hermes `<tool_call>` blocks when there are any, else ReAct actions."""
    blocks = [text[start:end] for start, end in tag_spans(text, _TOOL_CALL_OPEN, _TOOL_CALL_CLOSE)]
    if blocks:
        return [call for block in blocks for call in _parse_hermes_block(block)]
    return _parse_react(text)


def _parse_hermes_block(block: str) -> list[ToolCall]:
    calls = []
    for value in _json_values(block.strip()):
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise CallFormatError('a <tool_call> must hold {"name": ..., "arguments": {...}}')
            arguments = item.get("arguments", item.get("parameters", {}))
            calls.append(ToolCall(item["name"].strip(), _as_arguments(arguments, item["name"])))
    return calls


def _json_values(text: str) -> list[Any]:
    values, position = [], 0
    while position < len(text):
        if text[position] in " \t\r\n,":
            position += 1
            continue
        try:
            value, position = _JSON.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise CallFormatError(f"a <tool_call> block is not valid JSON ({error.msg})") from None
        except (ValueError, RecursionError):  # a 5000-digit number, or [[[[... thousands deep
            raise CallFormatError("a <tool_call> block holds JSON too large or too deep to read") from None
        values.append(value)
    return values


def _parse_react(text: str) -> list[ToolCall]:
    actions = list(_ACTION.finditer(text))
    calls = []
    for index, action in enumerate(actions):
        name = action.group("name").strip().strip("`'\"*").strip()
        if not _TOOL_NAME.fullmatch(name):
            raise CallFormatError(f"'Action: {name[:80]}' does not name a tool")
        segment_end = actions[index + 1].start() if index + 1 < len(actions) else len(text)
        segment = text[action.end() : segment_end]
        marker = _ACTION_INPUT.search(segment)
        if marker is None:
            raise CallFormatError(f"Action {name} has no 'Action Input:' line")
        calls.append(ToolCall(name, _as_arguments(_decode_action_input(segment, marker.end(), name), name)))
    return calls


def _decode_action_input(segment: str, start: int, name: str) -> Any:
    body = segment[start:].lstrip()
    fence = re.match(r"```(?:json)?\s*", body)
    if fence:
        body = body[fence.end() :]
    try:
        value, _ = _JSON.raw_decode(body)
    except (ValueError, RecursionError):
        raise CallFormatError(f"the Action Input of {name} is not valid JSON") from None
    return value


def _as_arguments(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, str):  # arguments double-encoded as a JSON string
        try:
            value = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):
            raise CallFormatError(f"the arguments of {name} are not a JSON object") from None
    if not isinstance(value, dict):
        raise CallFormatError(f"the arguments of {name} are not a JSON object")
    if _depth(value) > _MAX_ARGUMENT_DEPTH:
        raise CallFormatError(
            f"the arguments of {name} are nested more than {_MAX_ARGUMENT_DEPTH} levels deep"
        )
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack += [(child, level + 1) for child in item.values()]
        elif isinstance(item, list):
            stack += [(child, level + 1) for child in item]
    return deepest


def canonical(value: Any, rules: Normalization) -> Any:
    """A normal form in which equal-after-normalisation values are equal as JSON."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        text = " ".join(value.split()) if rules.normalize_whitespace else value
        if rules.coerce_types:
            if _NUMBER.fullmatch(text.strip()):
                return canonical(float(text), rules)  # "5" == 5 == 5.0
            if text.strip().lower() in ("true", "false"):
                return text.strip().lower() == "true"
        return text if rules.case_sensitive else text.lower()
    if isinstance(value, list | tuple):
        return [canonical(item, rules) for item in value]
    if isinstance(value, dict):
        normalized = {str(key): canonical(item, rules) for key, item in value.items()}
        return {key: item for key, item in normalized.items() if item not in (None, "")}
    return str(value)


def _call_key(call: ToolCall, rules: Normalization) -> tuple[str, str]:
    return call.name, json.dumps(canonical(call.arguments, rules), sort_keys=True, ensure_ascii=False)


def gold_calls(ground_truth: Any) -> list[ToolCall]:
    try:
        calls = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    except json.JSONDecodeError as error:
        raise GroundTruthError(f"tool ground truth is not JSON: {error}") from None
    if not isinstance(calls, list | tuple):
        raise GroundTruthError('tool ground truth must be a JSON list of {"name", "arguments"} calls')
    parsed = []
    for position, call in enumerate(calls):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call["name"].strip():
            raise GroundTruthError(f"tool ground truth call {position} has no tool name")
        try:
            parsed.append(
                ToolCall(
                    call["name"].strip(),
                    _as_arguments(call.get("arguments", {}), call["name"]),
                    _allowed_values(call.get("allowed"), position),
                )
            )
        except CallFormatError as error:
            raise GroundTruthError(f"tool ground truth call {position}: {error}") from None
    return parsed


def _allowed_values(allowed: Any, position: int) -> dict[str, list] | None:
    if allowed is None:
        return None
    if not isinstance(allowed, Mapping) or not all(
        isinstance(values, list) and values for values in allowed.values()
    ):
        raise GroundTruthError(
            f"tool ground truth call {position}: 'allowed' must map each argument to a non-empty list"
        )
    return dict(allowed)


def _may_be_absent(value: Any) -> bool:
    return value is None or value == ""


def _value_accepted(accepted: Any, value: Any, rules: Normalization) -> bool:
    if isinstance(accepted, dict) and all(isinstance(item, list) for item in accepted.values()):
        return isinstance(value, dict) and not _allowed_differences(accepted, value, rules)
    if isinstance(accepted, list) and any(isinstance(item, dict) for item in accepted):
        return (
            isinstance(value, list)
            and len(value) == len(accepted)
            and all(_value_accepted(item, given, rules) for item, given in zip(accepted, value))
        )
    return canonical(accepted, rules) == canonical(value, rules)


def _allowed_differences(allowed: Mapping[str, list], arguments: Mapping, rules: Normalization) -> list[str]:
    """Which argument names break `allowed`, never the accepted values."""
    given = {key: value for key, value in arguments.items() if not _may_be_absent(canonical(value, rules))}
    notes = [f"unexpected argument '{key}'" for key in given if key not in allowed]
    for key, accepted in allowed.items():
        if key not in given:
            if not any(_may_be_absent(value) for value in accepted):
                notes.append(f"missing argument '{key}'")
        elif not any(
            _value_accepted(value, given[key], rules) for value in accepted if not _may_be_absent(value)
        ):
            notes.append(f"wrong value for '{key}'")
    return notes


def _matches(gold: ToolCall, pred: ToolCall, rules: Normalization) -> bool:
    if gold.allowed is None:
        return _call_key(gold, rules) == _call_key(pred, rules)
    return gold.name == pred.name and not _allowed_differences(gold.allowed, pred.arguments, rules)


def _matched_count(golds: list[ToolCall], preds: list[ToolCall], rules: Normalization) -> int:
    """Size of a maximum matching of gold to predicted calls (Kuhn's augmenting paths): with `allowed`,
    one predicted call may fit several gold calls, so first-fit pairing can miss a full match."""
    fits = [[j for j, pred in enumerate(preds) if _matches(gold, pred, rules)] for gold in golds]
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(assign(i, set()) for i in range(len(golds)))


def _argument_differences(gold: ToolCall, pred: ToolCall, rules: Normalization) -> list[str]:
    """Which argument names differ, never their gold values."""
    if gold.allowed is not None:
        return _allowed_differences(gold.allowed, pred.arguments, rules)
    gold_args, pred_args = canonical(gold.arguments, rules), canonical(pred.arguments, rules)
    notes = [f"missing argument '{key}'" for key in gold_args if key not in pred_args]
    notes += [f"unexpected argument '{key}'" for key in pred_args if key not in gold_args]
    notes += [
        f"wrong value for '{key}'"
        for key in gold_args
        if key in pred_args and gold_args[key] != pred_args[key]
    ]
    return notes


def _closest(gold: ToolCall, candidates: list[ToolCall], rules: Normalization) -> ToolCall:
    return min(candidates, key=lambda pred: len(_argument_differences(gold, pred, rules)))


def _feedback(golds: list[ToolCall], preds: list[ToolCall], rules: Normalization) -> str:
    gold_names, pred_names = Counter(c.name for c in golds), Counter(c.name for c in preds)
    parts = []
    missing, extra = gold_names - pred_names, pred_names - gold_names
    if missing:
        parts.append("Missing call(s) to: " + ", ".join(_counted(missing)) + ".")
    if extra:
        parts.append("Unexpected call(s) to: " + ", ".join(_counted(extra)) + ".")
    unmatched_gold, unmatched_pred = _unmatched(golds, preds, rules)
    for gold in unmatched_gold:
        same_name = [pred for pred in unmatched_pred if pred.name == gold.name]
        if same_name:
            closest = _closest(gold, same_name, rules)
            unmatched_pred.remove(closest)
            parts.append(
                f"Call to {gold.name}: " + "; ".join(_argument_differences(gold, closest, rules)) + "."
            )
    return " ".join(parts)


def _unmatched(golds: list[ToolCall], preds: list[ToolCall], rules: Normalization):
    remaining = list(preds)
    unmatched_gold = []
    for gold in golds:
        match = next((pred for pred in remaining if _matches(gold, pred, rules)), None)
        if match is None:
            unmatched_gold.append(gold)
        else:
            remaining.remove(match)
    return unmatched_gold, remaining


def _counted(names: Counter) -> list[str]:
    return [name if count == 1 else f"{name} (x{count})" for name, count in sorted(names.items())]


@register_verifier("tool")
def verify_tool(
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    case_sensitive: bool = True,
    normalize_whitespace: bool = True,
    coerce_types: bool = True,
) -> VerifierResult:
    rules = Normalization(case_sensitive, normalize_whitespace, coerce_types)
    golds = gold_calls(ground_truth)
    region = final_answer_region(solution_str)
    if region is None:
        return VerifierResult.failure(
            "no_tool_call",
            "The response ended inside an unfinished <think> block.",
            format_ok=False,
            n_checks=len(golds),
        )
    try:
        preds = parse_tool_calls(region)
    except CallFormatError as error:
        return VerifierResult.failure(
            "bad_tool_call", f"Unreadable tool call: {error}.", format_ok=False, n_checks=len(golds)
        )
    pred_summary = json.dumps([{"name": c.name, "arguments": c.arguments} for c in preds], ensure_ascii=False)
    if not preds and golds:
        return VerifierResult.failure(
            "no_tool_call",
            "No tool call found: use 'Action: <tool>' then 'Action Input: <JSON object>'.",
            format_ok=False,
            n_checks=len(golds),
        )

    gold_names, pred_names = Counter(c.name for c in golds), Counter(c.name for c in preds)
    matched_calls = _matched_count(golds, preds, rules)
    name_overlap = sum((gold_names & pred_names).values()) / max(1, sum((gold_names | pred_names).values()))
    details = {
        "partial": (name_overlap + matched_calls / max(1, len(golds), len(preds))) / 2,
        "n_checks": len(golds),
        "n_passed": matched_calls,
    }
    if matched_calls == len(golds) == len(preds):
        return VerifierResult.success(pred=pred_summary, **details)
    reason = "wrong_tools" if gold_names != pred_names else "wrong_arguments"
    return VerifierResult.failure(reason, _feedback(golds, preds, rules), pred=pred_summary, **details)
