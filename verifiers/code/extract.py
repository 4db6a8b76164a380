"""Which code in a response is the answer: a fenced block, chosen by policy."""

from __future__ import annotations

import re

# A fence line starts (after spaces or tabs) with ```, optionally followed by a language tag; the next
# fence line closes the block. An unclosed final fence means the response was cut off mid-program:
# that block is not counted. Scanned line by line, so the cost is linear in the response length
# however many fences it opens.
_FENCE = "```"
_INDENT = re.compile(r"[ \t]*")
_LANGUAGE_TAG = re.compile(r"[ \t]*([\w+#.-]*)")
_PYTHON_TAGS = {"python", "python3", "py", "py3"}
POLICIES = ("last", "longest")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every closed fenced block, in order."""
    blocks = []
    opened: tuple[str, int] | None = None  # (language tag, offset where the body starts)
    line_start = 0
    while line_start < len(text):
        newline = text.find("\n", line_start)
        line_end = len(text) if newline < 0 else newline
        indent = _INDENT.match(text, line_start, line_end).end()
        if text.startswith(_FENCE, indent, line_end):
            if opened is not None:
                blocks.append((opened[0], text[opened[1] : line_start]))
                opened = None
            elif newline >= 0:  # an opening fence needs a body after it
                tag = _LANGUAGE_TAG.match(text, indent + len(_FENCE), line_end).group(1)
                opened = (tag.lower(), newline + 1)
        if newline < 0:
            break
        line_start = newline + 1
    return blocks


def extract_code(text: str, policy: str = "last") -> str | None:
    """The answer's program: among python-tagged blocks (else all blocks) the last or the longest.

    "last" is LiveCodeBench's rule (the final block is the answer); "longest" is MOPD's, which
    ignores a short usage example written after the solution.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown code extraction policy {policy!r}; use one of {POLICIES}")
    blocks = fenced_blocks(text)
    python_blocks = [body for lang, body in blocks if lang in _PYTHON_TAGS]
    candidates = python_blocks or [body for _, body in blocks]
    candidates = [body for body in candidates if body.strip()]
    if not candidates:
        return None
    return candidates[-1] if policy == "last" else max(candidates, key=len)
