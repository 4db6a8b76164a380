"""Which code in a response is the answer: a fenced block, chosen by policy."""

from __future__ import annotations

import re

# A fence line opens with ``` (optionally a language tag) and a later line closes it. An unclosed
# final fence means the response was cut off mid-program: that block is not counted.
_FENCED_BLOCK = re.compile(
    r"^[ \t]*```[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```", re.DOTALL | re.MULTILINE
)
_PYTHON_TAGS = {"python", "python3", "py", "py3"}
POLICIES = ("last", "longest")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every closed fenced block, in order."""
    return [(match["lang"].lower(), match["body"]) for match in _FENCED_BLOCK.finditer(text)]


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
