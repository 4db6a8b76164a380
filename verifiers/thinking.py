"""The part of a response that is graded: whatever follows the reasoning block."""

from __future__ import annotations

import re

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def final_answer_region(response: str) -> str | None:
    """Text after the last `</think>`; the whole response if it has no reasoning block.

    Returns None when a `<think>` block is opened and never closed: the response was cut off while
    still reasoning, so a `\\boxed{}` or code block inside it is a draft, not an answer.
    """
    closes = list(_THINK_CLOSE.finditer(response))
    if closes:
        return response[closes[-1].end() :]
    if _THINK_OPEN.search(response):
        return None
    return response
