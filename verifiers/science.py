"""Science multiple-choice verifier (SciKnowEval-style): one option letter, exact match.

The answer is read from the last `<answer>X</answer>`, else the last `\\boxed{X}`, else the last
"Answer: X" line. Exactly one option must be named; several or none is a format failure. True-or-
false items use "True"/"False" (Yes/No are read as True/False).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from verifiers.errors import GroundTruthError
from verifiers.math_verifier import extract_boxed
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.thinking import final_answer_region

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
# Last resort, so stricter: an upper-case letter (or a truth word) right after "answer:" or "answer is",
# so that prose like "the answer is a bit subtle" does not read as option A.
_ANSWER_LINE = re.compile(
    r"(?i:\banswer)(?:\s*[:：]|\s+(?i:is)\b:?)\s*[*$]*"
    r"(?P<answer>\(?(?:[A-Z]|(?i:true|false|yes|no))\)?(?:\s*(?:,|/|&|and|or)\s*\(?[A-Z]\)?)*)(?![A-Za-z])"
)
_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_SINGLE_LETTER = re.compile(r"\(?([A-Za-z])\)?")
_LETTER_WITH_OPTION_TEXT = re.compile(r"\(?([A-Z])[).:]\s+\S.*", re.DOTALL)
_SEVERAL_LETTERS = re.compile(r"\(?[A-Z]\)?(?:\s*(?:,|/|&|and|or|\s)?\s*\(?[A-Z]\)?)+")
_TRUTH_WORDS = {"true": "True", "yes": "True", "false": "False", "no": "False"}


def extract_choice_text(response: str) -> str | None:
    tags = _ANSWER_TAG.findall(response)
    if tags:
        return tags[-1]
    boxed = extract_boxed(response)
    if boxed is not None:
        return boxed
    lines = list(_ANSWER_LINE.finditer(response))
    return lines[-1].group("answer") if lines else None


def _clean(text: str) -> str:
    for _ in range(2):
        text = _WRAPPERS.sub(r"\1", text)
    return text.strip().strip("*$`'\"[] ").rstrip(".").strip()


def read_choice(text: str) -> tuple[str | None, str]:
    """(the option named, "") or (None, reason) with reason "multiple_answers" or "no_answer"."""
    cleaned = _clean(text)
    word = cleaned.lower()
    if word in _TRUTH_WORDS:
        return _TRUTH_WORDS[word], ""
    single = _SINGLE_LETTER.fullmatch(cleaned)
    if single:
        return single.group(1).upper(), ""
    with_text = _LETTER_WITH_OPTION_TEXT.fullmatch(cleaned)
    if with_text:
        return with_text.group(1), ""
    if _SEVERAL_LETTERS.fullmatch(cleaned):
        return None, "multiple_answers"
    return None, "no_answer"


def _gold_choice(ground_truth: Any) -> str:
    text = str(ground_truth).strip() if isinstance(ground_truth, str | bool) else None
    if text is not None:
        if text.lower() in _TRUTH_WORDS:
            return _TRUTH_WORDS[text.lower()]
        if re.fullmatch(r"[A-Za-z]", text):
            return text.upper()
    raise GroundTruthError(
        f"science ground truth must be one option letter or True/False, got {ground_truth!r}"
    )


def _is_truth(choice: str) -> bool:
    return choice in ("True", "False")


def _valid_choices(gold: str, extra_info: Mapping[str, Any] | None) -> list[str]:
    # From parquet this may be a numpy array, whose truth value is ambiguous: test for None only.
    labels = (extra_info or {}).get("choice_labels")
    if labels is None or _is_truth(gold):
        return []
    return [str(label).strip().upper() for label in labels]


@register_verifier("science")
def verify_science(
    solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None
) -> VerifierResult:
    """Exact match of the chosen option; `extra_info["choice_labels"]` restricts the valid letters."""
    gold = _gold_choice(ground_truth)
    region = final_answer_region(solution_str)
    text = extract_choice_text(region) if region is not None else None
    if text is None:
        return VerifierResult.failure(
            "no_answer",
            "No answer found: give only the option letter inside <answer></answer>.",
            format_ok=False,
        )
    choice, problem = read_choice(text)
    if problem == "multiple_answers":
        return VerifierResult.failure(
            "multiple_answers",
            "The answer names several options; give exactly one.",
            pred=text,
            format_ok=False,
        )
    valid = _valid_choices(gold, extra_info)
    if choice is None or (valid and choice not in valid) or _is_truth(choice) != _is_truth(gold):
        expected_form = "True or False" if _is_truth(gold) else "one option letter"
        options = f" ({', '.join(valid)})" if valid and not _is_truth(gold) else ""
        return VerifierResult.failure(
            "no_answer", f"The answer must be {expected_form}{options}.", pred=text, format_ok=False
        )
    if choice == gold:
        return VerifierResult.success(pred=choice)
    # Naming the wrong option would give away the right one on two-choice and true/false items.
    return VerifierResult.failure("wrong_answer", "The chosen option is incorrect.", pred=choice)
