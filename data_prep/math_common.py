"""The math prompt and answer handling shared by the training set (deepmath) and the eval sets (math_eval)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_prep.validate import EMPTY_PROMPT, MISSING_ANSWER, RowError

# The verifier grades the last \boxed{} of the response, so every math prompt asks for one.
MATH_PROMPT_SUFFIX = "\n\nPlease reason step by step, and put your final answer within \\boxed{}."

_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _matching_brace(text: str, open_position: int) -> int | None:
    depth = 0
    for position in range(open_position, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return position
    return None


def last_boxed_content(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    open_position = start + len("\\boxed")
    close_position = _matching_brace(text, open_position)
    return None if close_position is None else text[open_position + 1 : close_position]


def _unwrap_once(text: str) -> str:
    for opening, closing in _MATH_DELIMITERS:
        if len(text) >= len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
            inner = text[len(opening) : -len(closing)]
            # "$1$ and $2$" starts and ends with "$" but is not one math span.
            if opening not in inner:
                return inner.strip()
    if text.startswith("\\boxed{") and _matching_brace(text, len("\\boxed")) == len(text) - 1:
        return text[len("\\boxed{") : -1].strip()
    return text


def normalize_answer(raw: Any) -> str:
    """The bare answer string the math verifier compares against.

    Publishers store answers as ints, int-valued floats, or LaTeX wrapped in `$…$` or `\\boxed{}`.
    """
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = "" if raw is None else str(raw).strip()
    while (unwrapped := _unwrap_once(text)) != text:
        text = unwrapped
    if not text:
        raise RowError("answer", MISSING_ANSWER)
    return text


def math_row(
    *, data_source: str, split: str, index: int, problem: Any, answer: Any, extra_info: Mapping[str, Any]
) -> dict:
    if not isinstance(problem, str) or not problem.strip():
        raise RowError("problem", EMPTY_PROMPT)
    ground_truth = normalize_answer(answer)
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": problem.strip() + MATH_PROMPT_SUFFIX}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {"index": index, "split": split, "verifier": "math", **extra_info},
    }
