"""Math verifier: the last `\\boxed{}` (or a final-answer line) against a LaTeX answer string.

Order of checks: a cheap normalised string / integer / fraction comparison decides most rows without
leaving the process; only what it cannot settle goes to math-verify in a killable worker process
(`verifiers.math_pool`), with a hard deadline. A timeout scores 0 with reason "timeout".
"""

from __future__ import annotations

import numbers
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from verifiers.errors import GroundTruthError
from verifiers.math_pool import MathCheck, shared_pool
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.thinking import final_answer_region

DEFAULT_TIMEOUT_S = 10.0
# A rollout group repeats the same few answers; a cached timeout then costs one deadline, not n.
_CACHE_SIZE = 4096

# Python refuses to parse integers of more than 4300 digits; no real answer comes close.
_MAX_NUMBER_CHARS = 1000

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\b")
_FINAL_ANSWER_LINE = re.compile(
    r"^[ \t>*#_]*(?:the\s+)?(?:final\s+answer(?:\s+is)?|answer)[ \t*_]*[:：][ \t]*(?P<answer>.+?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_FRAC = re.compile(r"^(?P<sign>[+-]?)\\frac\{(?P<num>[+-]?\d+)\}\{(?P<den>[+-]?\d+)\}$")
_SLASH = re.compile(r"^(?P<num>[+-]?\d+)/(?P<den>[+-]?\d+)$")


def extract_boxed(text: str) -> str | None:
    """Content of the last well-formed `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`)."""
    for match in reversed(list(_BOX_COMMAND.finditer(text))):
        content = _group_after(text, match.end())
        if content is not None:
            return content.strip()
    return None


def _group_after(text: str, start: int) -> str | None:
    position = start
    while position < len(text) and text[position] == " ":
        position += 1
    if position >= len(text):
        return None
    if text[position] != "{":
        token = re.match(r"[^\s$]+", text[position:])
        return token.group(0) if token else None
    depth = 0
    index = position
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2  # an escaped brace \{ is content, not grouping
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[position + 1 : index]
        index += 1
    return None  # unbalanced: the response was cut off inside the box


def extract_final_answer(text: str) -> str | None:
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    lines = list(_FINAL_ANSWER_LINE.finditer(text))
    if not lines:
        return None
    answer = lines[-1].group("answer").strip().rstrip(".").strip("*").strip()
    if answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    return answer.rstrip(".").strip() or None


def normalize_answer(answer: str) -> str:
    """A canonical spelling for exact comparison; never changes the mathematical value."""
    text = answer.strip()
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("$", "")
    text = _SPACING.sub("", text)
    text = _DEGREES.sub("", text)
    for _ in range(3):  # nested wrappers such as \text{\textbf{5}}
        text = _TEXT_WRAPPER.sub(r"\1", text)
    text = text.replace("{,}", ",")
    text = re.sub(r"\s+", "", text)
    text = text.rstrip(".")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text


def as_number(normalized: str) -> Fraction | None:
    """Plain integers, decimals and integer fractions only: nothing that needs evaluation."""
    if len(normalized) > _MAX_NUMBER_CHARS:
        return None
    if _INTEGER.match(normalized) or _DECIMAL.match(normalized):
        return Fraction(normalized)
    for pattern in (_FRAC, _SLASH):
        match = pattern.match(normalized)
        if match and int(match["den"]) != 0:
            value = Fraction(int(match["num"]), int(match["den"]))
            return -value if match.groupdict().get("sign") == "-" else value
    return None


def fast_verdict(gold: str, pred: str) -> bool | None:
    """True/False when the cheap comparison is conclusive, None when math-verify must decide."""
    gold_norm, pred_norm = normalize_answer(gold), normalize_answer(pred)
    if gold_norm == pred_norm:
        return True
    gold_value, pred_value = as_number(gold_norm), as_number(pred_norm)
    if gold_value is None or pred_value is None:
        return None
    if gold_value == pred_value:
        return True
    # Two different integers are different; decimals may still match under math-verify's rounding.
    if _INTEGER.match(gold_norm) and _INTEGER.match(pred_norm):
        return False
    return None


class _VerdictCache:
    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[tuple[str, str], MathCheck] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> MathCheck | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: MathCheck) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verdict_cache = _VerdictCache(_CACHE_SIZE)


def math_verify_check(gold: str, pred: str, timeout_s: float, workers: int) -> MathCheck:
    key = (gold, pred)
    cached = verdict_cache.get(key)
    if cached is not None:
        return cached
    result = shared_pool(workers).check(gold, pred, timeout_s)
    if not result.error:  # a crashed worker may be transient; do not remember it
        verdict_cache.put(key, result)
    return result


def _quote(pred: str, limit: int = 200) -> str:
    return pred if len(pred) <= limit else pred[:limit] + "…"


def _gold_answer(ground_truth: Any) -> str:
    if isinstance(ground_truth, numbers.Number) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)  # parquet may hand over an int, even a numpy one
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise GroundTruthError(f"math ground truth must be a non-empty answer string, got {ground_truth!r}")
    boxed = extract_boxed(ground_truth) if _BOX_COMMAND.search(ground_truth) else None
    return boxed if boxed is not None else ground_truth.strip()


@register_verifier("math")
def verify_math(
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
) -> VerifierResult:
    """Grade the final answer of a math response.

    Options: `timeout` seconds for one math-verify comparison (the worker is killed after it);
    `workers` math-verify processes (default: min(4, CPUs)).
    """
    gold = _gold_answer(ground_truth)
    region = final_answer_region(solution_str)
    if region is None:
        return VerifierResult.failure(
            "no_answer",
            "The response ended inside an unfinished <think> block, so it gives no final answer.",
            format_ok=False,
        )
    pred = extract_final_answer(region)
    if pred is None:
        return VerifierResult.failure(
            "no_answer", "No final answer found: give the final answer in \\boxed{...}.", format_ok=False
        )

    verdict = fast_verdict(gold, pred)
    if verdict is None:
        check = math_verify_check(gold, pred, timeout, workers or min(4, os.cpu_count() or 1))
        if check.timed_out:
            return VerifierResult.failure(
                "timeout",
                f"The final answer {_quote(pred)} could not be compared within {timeout:g} s and counts as incorrect.",
                pred=pred,
            )
        if check.error:
            return VerifierResult.failure(
                "verifier_error", "The final answer could not be checked and counts as incorrect.", pred=pred
            )
        verdict = check.equal
    if verdict:
        return VerifierResult.success(pred=pred)
    return VerifierResult.failure("wrong_answer", f"The final answer {_quote(pred)} is incorrect.", pred=pred)
