"""Multi-turn episodes (tool-use rollouts) as peers: turns from the response mask, and their rendering.

verl's `tool_agent` loop returns one response per rollout in which the policy's tokens (response_mask 1)
interleave with tool results and the chat template's scaffolding around them (response_mask 0). A peer of
such a rollout is shown to the teacher as its whole episode, each turn marked by its role:

    [assistant]
    <tool_call>{"name": "add", "arguments": {"a": 13, "b": 25}}</tool_call>
    [tool result]
    38
    [assistant]
    \\boxed{38}

Tool results can be dropped (`include_tool_results=False`). When an episode must be cut to a token budget
the tool results shrink first (each keeps its start, where a tool's answer or error usually is), and only
then the episode itself is cut from the front, keeping its final turns. The released MOPD code has no
multi-turn path; peers there are single responses.

No verl import: the tokenizer is used only through `apply_chat_template`, `encode` and `decode`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

ASSISTANT = "assistant"
TOOL = "tool"

# Placeholders that no chat template or tool result contains.
_SENTINELS = ("\x1fMOPD_TOOL_RESULT_A\x1f", "\x1fMOPD_TOOL_RESULT_B\x1f")


@dataclass(frozen=True)
class Turn:
    """One turn of an episode: `role` is "assistant" (policy tokens) or "tool" (one tool result)."""

    role: str
    text: str

    def __post_init__(self):
        if self.role not in (ASSISTANT, TOOL):
            raise ValueError(f"turn role must be {ASSISTANT!r} or {TOOL!r}, got {self.role!r}")
        if not isinstance(self.text, str):
            raise TypeError(f"turn text must be a str, got {type(self.text).__name__}")


def split_by_mask(response_ids: Sequence[int], response_mask: Sequence[int]) -> list[tuple[str, list[int]]]:
    """Maximal runs of equal mask value: (role, ids) with role "assistant" for 1 and "tool" for 0.

    Shapes: both inputs [R]. Raises ValueError on a length mismatch or a mask value other than 0/1.
    """
    if len(response_ids) != len(response_mask):
        raise ValueError(
            f"response_ids has {len(response_ids)} tokens but response_mask has {len(response_mask)} entries"
        )
    runs: list[tuple[str, list[int]]] = []
    previous = None
    for token, value in zip(response_ids, response_mask):
        value = int(value)
        if value not in (0, 1):
            raise ValueError(f"response_mask values must be 0 or 1, got {value}")
        if value != previous:
            runs.append((ASSISTANT if value else TOOL, []))
            previous = value
        runs[-1][1].append(int(token))
    return runs


def is_multi_turn(response_mask: Sequence[int] | None) -> bool:
    """A response with any non-policy token (response_mask 0) came from a multi-turn loop."""
    return response_mask is not None and any(int(v) == 0 for v in response_mask)


@dataclass(frozen=True)
class ToolTurnFormat:
    """How the chat template wraps tool results between two assistant turns.

    A context segment of the rollout (a response_mask-0 run) reads `prefix + r_1 + joiner + ... + r_k +
    suffix`, where the r_i are the tool results and `suffix` runs through the next generation header.
    Found by rendering placeholder tool results with the tokenizer's own template (`from_tokenizer`).
    """

    prefix: str
    joiner: str
    suffix: str

    @classmethod
    def from_tokenizer(cls, tokenizer, chat_template_kwargs: dict | None = None) -> ToolTurnFormat | None:
        """None when the template renders no tool role, or tool results not as a pure suffix."""
        call = {"type": "function", "function": {"name": "f", "arguments": {}}}
        base = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
        first, second = ({"role": "tool", "content": s} for s in _SENTINELS)
        kwargs = dict(chat_template_kwargs or {})
        try:
            base_text = tokenizer.apply_chat_template(base, tokenize=False, **kwargs)
            one = tokenizer.apply_chat_template(
                base + [first], tokenize=False, add_generation_prompt=True, **kwargs
            )
            two = tokenizer.apply_chat_template(
                base + [first, second], tokenize=False, add_generation_prompt=True, **kwargs
            )
        except Exception:  # noqa: BLE001 - a chat template is third-party code that may raise anything
            # Templates that reject a tool role or tool calls (jinja raise_exception) have no tool turns.
            return None
        if not (one.startswith(base_text) and two.startswith(base_text)):
            return None
        one, two = one[len(base_text) :], two[len(base_text) :]
        a, b = _SENTINELS
        if one.count(a) != 1 or two.count(a) != 1 or two.count(b) != 1:
            return None
        prefix, suffix = one.split(a)
        between = two[two.index(a) + len(a) : two.index(b)]
        if not two.startswith(prefix) or not two.endswith(suffix):
            return None
        return cls(prefix=prefix, joiner=between, suffix=suffix)

    def contents(self, segment_text: str) -> list[str] | None:
        """The tool results of one context segment (decoded with special tokens), or None if the segment
        does not have this format. Whitespace the loop inserts before the segment is ignored."""
        text = segment_text.lstrip()
        prefix = self.prefix.lstrip()
        if not text.startswith(prefix) or not text.endswith(self.suffix):
            return None
        if len(prefix) + len(self.suffix) > len(text):
            return None
        middle = text[len(prefix) : len(text) - len(self.suffix)]
        return middle.split(self.joiner) if self.joiner else [middle]


def episode_turns(
    tokenizer,
    response_ids: Sequence[int],
    response_mask: Sequence[int],
    tool_format: ToolTurnFormat | None,
) -> list[Turn]:
    """The episode of one multi-turn response as role-marked turns.

    Assistant turns are the policy's tokens decoded without special tokens. Each context segment becomes
    one tool turn per tool result when it matches `tool_format`; otherwise (unknown template, a user turn
    injected by an interaction) the whole segment decoded without special tokens is one tool turn.
    Empty turns are dropped.
    """
    turns: list[Turn] = []
    for role, ids in split_by_mask(response_ids, response_mask):
        if role == ASSISTANT:
            texts = [tokenizer.decode(ids, skip_special_tokens=True)]
        else:
            parsed = None
            if tool_format is not None:
                parsed = tool_format.contents(tokenizer.decode(ids, skip_special_tokens=False))
            texts = parsed if parsed is not None else [tokenizer.decode(ids, skip_special_tokens=True)]
        turns += [Turn(role, text.strip()) for text in texts if text.strip()]
    return turns


@dataclass(frozen=True)
class EpisodeTemplates:
    """Role markers of an episode; each contains `{text}` exactly once."""

    assistant: str = "[assistant]\n{text}\n"
    tool: str = "[tool result]\n{text}\n"

    def __post_init__(self):
        for name in ("assistant", "tool"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"EpisodeTemplates.{name} must be a str, got {type(value).__name__}")
            if value.count("{text}") != 1:
                raise ValueError(f"EpisodeTemplates.{name} must contain {{text}} exactly once")

    def render(self, turn: Turn) -> str:
        return (self.assistant if turn.role == ASSISTANT else self.tool).replace("{text}", turn.text)


def visible_turns(turns: Sequence[Turn], include_tool_results: bool) -> list[Turn]:
    return [t for t in turns if include_tool_results or t.role != TOOL]


def render_episode(
    turns: Sequence[Turn], templates: EpisodeTemplates, include_tool_results: bool = True
) -> str:
    """The peer body of an episode: its turns in order, each behind its role marker."""
    return "".join(templates.render(t) for t in visible_turns(turns, include_tool_results)).rstrip("\n")


def _water_fill(sizes: list[int], target_total: int) -> list[int]:
    """The largest level c with sum(min(size, c)) <= target_total, applied to every size."""
    if not sizes:
        return []
    lo, hi = 0, max(sizes)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(s, mid) for s in sizes) <= target_total:
            lo = mid
        else:
            hi = mid - 1
    return [min(s, lo) for s in sizes]


def fit_episode(
    tokenizer,
    turns: Sequence[Turn],
    cap: int,
    templates: EpisodeTemplates,
    marker: str,
    include_tool_results: bool = True,
) -> str:
    """`render_episode` cut to about `cap` tokens (token counts of joined texts are not exactly additive;
    the caller re-measures the whole prompt).

    Tool results shrink first, the longest first, each keeping its start followed by `marker`, down to
    the marker alone. If the episode is still over `cap`, it is cut from the front behind `marker`,
    keeping its end (the final answer). `cap` 0 gives "". Raises ValueError for a negative cap.
    """
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    shown = visible_turns(turns, include_tool_results)
    full = render_episode(shown, templates)

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    full_ids = encode(full)
    if len(full_ids) <= cap:
        return full
    if cap == 0:
        return ""
    marker_len = len(encode(marker))
    tool_ids = [encode(t.text) if t.role == TOOL else [] for t in shown]
    fixed = len(full_ids) - sum(len(ids) for ids in tool_ids)
    sizes = [len(ids) for ids, t in zip(tool_ids, shown) if t.role == TOOL]
    caps = iter(_water_fill(sizes, max(cap - fixed, 0)))
    cut_turns = []
    for turn, ids in zip(shown, tool_ids):
        if turn.role == TOOL:
            keep = next(caps)
            if keep < len(ids):
                head = ids[: max(keep - marker_len, 0)]
                turn = Turn(TOOL, _decode(tokenizer, head).rstrip("\ufffd") + marker.strip("\n"))
        cut_turns.append(turn)
    text = render_episode(cut_turns, templates)
    ids = encode(text)
    if len(ids) <= cap:
        return text
    if cap <= marker_len:
        return ""
    tail = _decode(tokenizer, ids[len(ids) - (cap - marker_len) :])
    # A cut inside a multi-byte character decodes to U+FFFD.
    return marker + tail.lstrip("\ufffd")


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def episode_fitter(
    tokenizer,
    turns: Sequence[Turn],
    templates: EpisodeTemplates,
    marker: str,
    include_tool_results: bool,
) -> Callable[[int], str]:
    """`fit_episode` bound to one episode: cap -> peer body text."""
    turns = list(turns)
    return lambda cap: fit_episode(tokenizer, turns, cap, templates, marker, include_tool_results)
