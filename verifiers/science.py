"""Science multiple-choice verifier (SciKnowEval-style): one option letter, exact match.

Answer statements are `<answer>X</answer>`, `\\boxed{X}` and answer labels ("Answer: X", "**Answer:** X",
"**Answer: X**", "The correct answer is (X)"). The last statement in the response that names an option
decides, so a final "**Answer: D**" wins over a `\\boxed{}` formula earlier in the reasoning, and a
final `\\boxed{D}` wins over an earlier "Answer: A". Statements that name no option (a boxed formula,
an `<answer>` holding a sentence) are passed over; one that names several options is a format
failure. True-or-false items use "True"/"False" (Yes/No are read as True/False).

Every step is linear in the response length: tags are paired and boxes matched in one pass, and each
statement is read from a bounded window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from verifiers.errors import GroundTruthError
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.scan import boxed_spans, tag_spans
from verifiers.thinking import final_answer_region

_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
# Letters, not \b: in "__Answer:__" the underscores are word characters.
_ANSWER_WORD = re.compile(r"(?<![A-Za-z])answer(?![A-Za-z])", re.IGNORECASE)
# After the word "answer": its label ("Answer:", "**Answer**:", "answer is", "answer choice is:"),
# then the option(s) named. Letters must be upper case here, so that prose like "the answer is a bit
# subtle" does not read as option A; `(?![A-Za-z])` keeps "CLEARLY" from reading as C. Each separator
# has one way to match (no `\s*` next to `\s*`), so a failing match backtracks linearly, not 2^n.
_ANSWER_LABEL = re.compile(
    r"[ \t*_]*(?:(?:choice|option)\b[ \t*_]*)?(?:[:：]|is(?![A-Za-z])[ \t]*:?)[\s*_$]*(?:\\text(?:bf)?\{)?"
    r"(?P<answer>\(?(?:[A-Z]|(?i:true|false|yes|no))\)?"
    r"(?:(?:[ \t]*[,/&][ \t]*|[ \t]+(?:(?:and|or)[ \t]+)?)?\(?[A-Z]\)?)*)"
    r"(?![A-Za-z])"
)
_LABEL_WINDOW = 120
# Only the last occurrences of the word "answer" are read as labels: a final answer is not followed by
# dozens more, and a phrase repeated to the length limit then costs a constant, not one match per copy.
_MAX_LABELS = 64
# Longer than this, a statement can only be "C) <option text>": only its head is read.
_MAX_CHOICE_CHARS = 300
_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{([^{}]*)\}")
_SINGLE_LETTER = re.compile(r"\(?([A-Za-z])\)?")
_LETTER_WITH_OPTION_TEXT = re.compile(r"\(?([A-Z])[).:]\s+\S")
_LIST_SEPARATORS = re.compile(r"(?:[\s,/&]|\band\b|\bor\b)+")
_LIST_ITEM = re.compile(r"\(?([A-J])\)?|(?:\([A-J]\))+|[A-J]{2,5}")
_TRUTH_WORDS = {"true": "True", "yes": "True", "false": "False", "no": "False"}


def answer_statements(response: str) -> list[tuple[int, str]]:
    """(end offset, text) of every answer statement, in the order they end."""
    statements = [
        (end, response[start:end]) for start, end in tag_spans(response, _ANSWER_OPEN, _ANSWER_CLOSE)
    ]
    statements += [(end, response[start:end]) for start, end in _short_spans(boxed_spans(response))]
    for word in list(_ANSWER_WORD.finditer(response))[-_MAX_LABELS:]:
        label = _ANSWER_LABEL.match(response, word.end(), word.end() + _LABEL_WINDOW)
        if label:
            statements.append((label.end(), label["answer"]))
    statements.sort(key=lambda statement: statement[0])
    return statements


def _short_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # Nested boxes are spans within spans; reading only a head of each keeps the total linear.
    return [
        (start, min(end, start + _MAX_CHOICE_CHARS)) if end - start > _MAX_CHOICE_CHARS else (start, end)
        for start, end in spans
    ]


def extract_choice_text(response: str) -> str | None:
    """The text of the last answer statement, whatever it names."""
    statements = answer_statements(response)
    return statements[-1][1] if statements else None


def _clean(text: str) -> str:
    for _ in range(3):
        text = _WRAPPER.sub(r"\1", text)
    return text.strip().strip("*$`'\"[] ").rstrip(".").strip()


def read_choice(text: str) -> tuple[str | None, str]:
    """(the option named, "") or (None, reason) with reason "multiple_answers" or "no_answer"."""
    if len(text) > _MAX_CHOICE_CHARS:
        head = _LETTER_WITH_OPTION_TEXT.match(_clean(text[:_MAX_CHOICE_CHARS]))
        return (head.group(1), "") if head else (None, "no_answer")
    cleaned = _clean(text)
    word = cleaned.lower()
    if word in _TRUTH_WORDS:
        return _TRUTH_WORDS[word], ""
    single = _SINGLE_LETTER.fullmatch(cleaned)
    if single:
        return single.group(1).upper(), ""
    with_text = _LETTER_WITH_OPTION_TEXT.match(cleaned)
    if with_text:
        return with_text.group(1), ""
    letters = _letter_list(cleaned)
    if letters is not None and len(letters) > 1:
        return None, "multiple_answers"
    if letters is not None and len(letters) == 1:
        return letters.pop(), ""
    return None, "no_answer"


def _letter_list(text: str) -> set[str] | None:
    """The options of "A, C", "A and C", "(A)(C)", "AC"; None unless the text is only such a list."""
    letters: set[str] = set()
    for item in _LIST_SEPARATORS.split(text):
        if not item:
            continue
        if not _LIST_ITEM.fullmatch(item):
            return None
        found = [char for char in item if char.isupper()]
        if len(set(found)) != len(found):
            return None  # "DEAD" is a word, not a list of options
        letters.update(found)
    return letters or None


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
    valid = _valid_choices(gold, extra_info)
    region = final_answer_region(solution_str)
    statements = answer_statements(region) if region is not None else []
    if not statements:
        return VerifierResult.failure(
            "no_answer",
            "No answer found: give only the option letter inside <answer></answer>.",
            format_ok=False,
        )
    for _, text in reversed(statements):
        choice, problem = read_choice(text)
        if problem == "multiple_answers":
            return VerifierResult.failure(
                "multiple_answers",
                "The answer names several options; give exactly one.",
                pred=text,
                format_ok=False,
            )
        if choice is None or (valid and choice not in valid) or _is_truth(choice) != _is_truth(gold):
            continue  # names no option of this question: a formula, a sentence, a stray letter
        if choice == gold:
            return VerifierResult.success(pred=choice)
        # Naming the wrong option would give away the right one on two-choice and true/false items.
        return VerifierResult.failure("wrong_answer", "The chosen option is incorrect.", pred=choice)
    expected_form = "True or False" if _is_truth(gold) else "one option letter"
    options = f" ({', '.join(valid)})" if valid and not _is_truth(gold) else ""
    return VerifierResult.failure(
        "no_answer", f"The answer must be {expected_form}{options}.", pred=statements[-1][1], format_ok=False
    )
