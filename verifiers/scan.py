"""Linear-time scanners shared by the verifiers: boxed groups and paired tags.

Model output is adversarial by accident: early in RL a policy repeats an opener until the length limit
(`\\boxed{` × 4000, `<answer>` never closed), and lazy regexes over such text (`<answer>(.*?)</answer>`,
one brace scan per `\\boxed`) take quadratic or worse time. Everything here makes one pass over the
text (plus work bounded per match), so a response of n characters costs O(n) whatever it contains.
"""

from __future__ import annotations

import re

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\b")
# An escaped brace `\{` is content, not grouping; `\\` is an escaped backslash, so in `\\{` the brace
# groups. No other backslash pair matters, and skipping them keeps `\boxed{` at one token, not two.
_BRACE_TOKEN = re.compile(r"\\[\\{}]|[{}]")
_BARE_TOKEN = re.compile(r"[^\s$]+")
_SPACES = re.compile(r" *")

Span = tuple[int, int]


def matching_braces(text: str) -> dict[int, int]:
    """Index of each `{` → index of its matching `}`, for the braces that are closed; one pass."""
    stack: list[int] = []
    matches: dict[int, int] = {}
    for token in _BRACE_TOKEN.finditer(text):
        char = token.group()
        if char == "{":
            stack.append(token.start())
        elif char == "}" and stack:
            matches[stack.pop()] = token.start()
    return matches


def boxed_spans(text: str) -> list[Span]:
    """(start, end) of the content of every complete `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5`,
    in the order of the commands. A box left open (the response was cut off inside it) is skipped."""
    commands = list(_BOX_COMMAND.finditer(text))
    if not commands:
        return []
    matches = matching_braces(text) if "{" in text else {}
    spans = []
    for command in commands:
        position = command.end()
        if text.startswith(" ", position):
            position = _SPACES.match(text, position).end()
        if position >= len(text):
            continue
        if text[position] == "{":
            close = matches.get(position)
            if close is not None:
                spans.append((position + 1, close))
            continue
        token = _BARE_TOKEN.match(text, position)
        if token:
            spans.append(token.span())
    return spans


def tag_spans(text: str, opening: re.Pattern[str], closing: re.Pattern[str]) -> list[Span]:
    """(start, end) of the content of each closed tag pair, in order. A closing tag pairs with the
    nearest opening tag before it (and after the previous pair); unpaired tags are ignored."""
    opens = [match.end() for match in opening.finditer(text)]
    spans: list[Span] = []
    next_open = 0
    for close in closing.finditer(text):
        latest = None
        while next_open < len(opens) and opens[next_open] <= close.start():
            latest = opens[next_open]
            next_open += 1
        if latest is not None:
            spans.append((latest, close.start()))
    return spans
