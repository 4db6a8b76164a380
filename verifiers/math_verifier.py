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
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from verifiers.errors import GroundTruthError
from verifiers.math_pool import MathCheck, shared_pool
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.scan import boxed_spans
from verifiers.thinking import final_answer_region

DEFAULT_TIMEOUT_S = 10.0
# A rollout group repeats the same few answers; a cached timeout then costs one deadline, not n.
_CACHE_SIZE = 4096

# Python refuses to parse integers of more than 4300 digits; no real answer comes close.
_MAX_NUMBER_CHARS = 1000

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_FRAC = re.compile(r"^(?P<sign>[+-]?)\\frac\{(?P<num>[+-]?\d+)\}\{(?P<den>[+-]?\d+)\}$")
_SLASH = re.compile(r"^(?P<num>[+-]?\d+)/(?P<den>[+-]?\d+)$")
_PERCENT_SUFFIXES = ("\\%", "%", "percent")

# What a final-answer line looks like: optional decoration (emoji, list marker, bold, heading), an
# optional connective, "(the) (final) answer (is)", then ":" unless "is" said it. Matched on a bounded
# slice of one line, so a line costs O(its length) however it is built.
_DECORATION = re.compile(r"[\W_]*")
_ANSWER_LABEL = re.compile(
    r"(?:\d{1,3}[.)][\W_]*)?(?:(?:so|thus|therefore|hence),?\s+)?(?:the\s+)?(?:final\s+)?answer(?![a-z])"
    r"(?P<is>\s+is(?![a-z]))?[\s*_]*(?P<colon>[:：])?[\s*_]*",
    re.IGNORECASE,
)
_LABEL_WINDOW = 80
_ANSWER_WORD = re.compile(r"answer", re.IGNORECASE)
_NEXT_LINES = re.compile(r"[^\n]+")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_DISPLAY_MATH_FENCES = ("$$", "\\[", "\\]")

# Bounds on what is worth math-verify's time. Its parser is exponential in nesting depth (a bare
# `{` nested 20 deep took 6 minutes) and slow on long junk; real answers are short and shallow. A
# prediction past these bounds (relative to the gold, so long golds keep long answers) is wrong.
_MIN_ANSWER_CHARS = 200
_ANSWER_CHARS_PER_GOLD_CHAR = 4
_MIN_NESTING = 6
_NESTING_SLACK = 2
_OPENERS, _CLOSERS = "{([", "})]"


def extract_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`); O(len(text))."""
    spans = boxed_spans(text)
    if not spans:
        return None
    start, end = spans[-1]
    return text[start:end].strip()


def extract_answer_line(text: str) -> str | None:
    """The answer of the last final-answer line ("Final Answer: 73", "✅ **Answer:** 73", "The answer
    is 73"), or of the line after a bare "Final Answer" heading. A number in prose is not one.

    Only lines containing the word "answer" are read, each at most once: O(len(text)).
    """
    checked_from = len(text) + 1  # start of the last line read; later words on it are skipped
    for word in reversed(list(_ANSWER_WORD.finditer(text))):
        if word.start() >= checked_from:
            continue
        line_start = text.rfind("\n", 0, word.start()) + 1
        checked_from = line_start
        line_end = text.find("\n", word.end())
        line_end = len(text) if line_end < 0 else line_end
        answer = _answer_on_line(text[line_start:line_end])
        if answer:
            return answer
        if answer == "":
            following = _next_line(text, line_end)
            if following:
                return following
    return None


def _next_line(text: str, position: int) -> str | None:
    """The first line after `position` with content (display-math fences skipped), cleaned."""
    for line in _NEXT_LINES.finditer(text, position):
        content = line.group().strip()
        if content and content not in _DISPLAY_MATH_FENCES:
            return _clean_answer(content) if len(content) <= _MIN_ANSWER_CHARS else None
    return None


def _answer_on_line(line: str) -> str | None:
    """The answer text of a labelled line ("" for a bare label), None for any other line."""
    start = _DECORATION.match(line).end()
    window = line[start : start + _LABEL_WINDOW]
    label = _ANSWER_LABEL.match(window)
    if label is None or not (label["is"] or label["colon"] or label.end() == len(line) - start):
        return None
    return _clean_answer(line[start + label.end() :])


def _clean_answer(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    while answer and unicodedata.category(answer[-1]) in ("So", "Sk", "Cf"):  # a trailing ✅ or 🎉
        answer = answer[:-1].rstrip()
    answer = answer.strip("*_").strip().rstrip(".").strip()
    for opener, closer in _MATH_DELIMITERS:  # "$$" before "$": `$$73$$` unwraps in one step
        if answer.startswith(opener) and answer.endswith(closer) and len(answer) > len(opener) + len(closer):
            answer = answer[len(opener) : -len(closer)].strip().rstrip(".").strip()
            break
    return answer


def extract_final_answer(text: str) -> str | None:
    """The last `\\boxed{}` wins; without one, the last final-answer line."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    return extract_answer_line(text) or None


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


def split_percent(normalized: str) -> tuple[str, bool]:
    """(the answer without a trailing percent sign, whether it had one): `28\\%` → ("28", True)."""
    for suffix in _PERCENT_SUFFIXES:
        if normalized.endswith(suffix) and len(normalized) > len(suffix):
            return normalized[: -len(suffix)], True
    return normalized, False


def fast_verdict(gold: str, pred: str) -> bool | None:
    """True/False when the cheap comparison is conclusive, None when math-verify must decide.

    A percent sign on either side is a unit that may be dropped (`28\\%` equals `28`); a gold
    percentage also equals its fraction (`28\\%` equals `0.28`). It never turns 28 into 2800.
    """
    (gold_norm, gold_percent), (pred_norm, pred_percent) = (
        split_percent(normalize_answer(gold)),
        split_percent(normalize_answer(pred)),
    )
    if gold_norm == pred_norm:
        return True
    gold_value, pred_value = as_number(gold_norm), as_number(pred_norm)
    if gold_value is None or pred_value is None:
        return None
    if gold_value == pred_value:
        return True
    if gold_percent and not pred_percent and gold_value / 100 == pred_value:
        return True
    # Two different integers are different; decimals may still match under math-verify's rounding.
    if _INTEGER.match(gold_norm) and _INTEGER.match(pred_norm):
        return False
    return None


def nesting_depth(text: str) -> int:
    """Deepest nesting of (), [] and {} (escaped braces included); O(len(text))."""
    depth = deepest = 0
    for char in text:
        if char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSERS:
            depth = max(0, depth - 1)
    return deepest


def beyond_math_verify(gold: str, pred: str) -> str | None:
    """Why `pred` is not worth a math-verify call (too long, nested too deep), or None."""
    gold_norm, pred_norm = normalize_answer(gold), normalize_answer(pred)
    if len(pred_norm) > max(_MIN_ANSWER_CHARS, _ANSWER_CHARS_PER_GOLD_CHAR * len(gold_norm)):
        return "is far longer than any answer to this problem"
    if nesting_depth(pred_norm) > max(_MIN_NESTING, nesting_depth(gold_norm) + _NESTING_SLACK):
        return "is nested too deeply to be this problem's answer"
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
    boxed = extract_boxed(ground_truth)
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
        implausible = beyond_math_verify(gold, pred)
        if implausible:
            return VerifierResult.failure(
                "wrong_answer", f"The final answer {implausible} and counts as incorrect.", pred=pred
            )
        gold_value, pred_value = (split_percent(normalize_answer(side))[0] for side in (gold, pred))
        check = math_verify_check(gold_value, pred_value, timeout, workers or min(4, os.cpu_count() or 1))
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
