"""Teacher-context construction: which sibling rollouts the teacher sees, and how they are rendered.

Runs on the driver after rewards, once per rollout group: for each rollout i it picks successful and
failed peers from the same group (never i itself), renders them into the teacher's chat prompt within
token budgets, and returns the teacher prompt ids that the response ids are appended to for scoring.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe.mopd.prefix_sharing import shared_peer_selection
from recipe.mopd.trajectory import EpisodeTemplates, Turn, episode_fitter, render_episode

MODES = ("none", "positive", "contrastive")
FAILURE_CONDITIONS = ("always", "when_no_success")
SELECTIONS = ("random", "shortest", "first", "shared")

# Below these a budget is almost surely a typo (e.g. thousands meant): a 16-token peer body is mostly
# the truncation marker, and no chat-templated question fits in 64 tokens.
MIN_PEER_TOKENS = 16
MIN_PROMPT_TOKENS = 64


@dataclass(frozen=True)
class PeerTemplates:
    """Section texts, worded and spaced as the released MOPD YAML renders them (no extra blank lines)."""

    solution: str = "\nCorrect solution:\n\n{peer}"
    another_solution: str = "\nAnother successful solution:\n\n{peer}"
    failure: str = "\nA known failed solution (avoid repeating this mistake):\n\n{peer}"
    feedback: str = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}"
    closing: str = "\n\nCorrectly solve the original question."
    truncation_marker: str = "\n[... truncated ...]\n"
    # Role markers of a multi-turn peer's episode (recipe/mopd/trajectory.py).
    assistant_turn: str = EpisodeTemplates.assistant
    tool_turn: str = EpisodeTemplates.tool

    def __post_init__(self):
        EpisodeTemplates(assistant=self.assistant_turn, tool=self.tool_turn)
        for name in ("solution", "another_solution", "failure", "feedback", "closing", "truncation_marker"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"PeerTemplates.{name} must be a str, got {type(getattr(self, name)).__name__}"
                )
        for name, placeholder in (
            ("solution", "{peer}"),
            ("another_solution", "{peer}"),
            ("failure", "{peer}"),
            ("feedback", "{feedback}"),
        ):
            count = getattr(self, name).count(placeholder)
            if count != 1:
                raise ValueError(
                    f"PeerTemplates.{name} must contain {placeholder} exactly once, found {count}"
                )

    @property
    def episode(self) -> EpisodeTemplates:
        return EpisodeTemplates(assistant=self.assistant_turn, tool=self.tool_turn)


@dataclass(frozen=True)
class PeerConfig:
    """How the teacher context is built; see the module docstring and `build_teacher_context`."""

    mode: str = "contrastive"
    num_success: int = 2
    num_failure: int = 1
    failure_condition: str = "always"
    success_threshold: float = 1.0
    selection: str = "random"
    strip_thinking: bool = False
    use_feedback: bool = True
    # Multi-turn peers: show tool results in their episodes (they shrink first under a budget).
    include_tool_results: bool = True
    # None: no per-peer cap (peers are at most one response long); the whole-prompt budget still applies.
    max_peer_tokens: int | None = None
    max_prompt_tokens: int = 10240
    templates: PeerTemplates = field(default_factory=PeerTemplates)
    seed: int = 0

    def __post_init__(self):
        # Hydra/OmegaConf hands nested blocks over as mappings.
        if isinstance(self.templates, Mapping):
            object.__setattr__(self, "templates", PeerTemplates(**dict(self.templates)))
        if not isinstance(self.templates, PeerTemplates):
            raise TypeError(
                f"templates must be a PeerTemplates or a mapping, got {type(self.templates).__name__}"
            )
        _check_choice("mode", self.mode, MODES)
        _check_choice("failure_condition", self.failure_condition, FAILURE_CONDITIONS)
        _check_choice("selection", self.selection, SELECTIONS)
        for name in ("num_success", "num_failure", "max_prompt_tokens", "seed"):
            _check_int(name, getattr(self, name))
        if self.max_peer_tokens is not None:
            _check_int("max_peer_tokens", self.max_peer_tokens)
        for name in ("strip_thinking", "use_feedback", "include_tool_results"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.num_success < 0 or self.num_failure < 0:
            raise ValueError(
                f"num_success and num_failure must be >= 0, got {self.num_success} and {self.num_failure}"
            )
        if self.mode == "positive" and self.num_success == 0:
            raise ValueError("mode='positive' needs num_success >= 1 (it attaches only successful peers)")
        if self.mode == "contrastive" and self.num_failure == 0:
            raise ValueError(
                "mode='contrastive' needs num_failure >= 1; use mode='positive' for success-only contexts"
            )
        if isinstance(self.success_threshold, bool) or not isinstance(self.success_threshold, (int, float)):
            raise TypeError(f"success_threshold must be a number, got {self.success_threshold!r}")
        if not math.isfinite(self.success_threshold):
            raise ValueError(f"success_threshold must be finite, got {self.success_threshold}")
        if self.max_peer_tokens is not None and self.max_peer_tokens < MIN_PEER_TOKENS:
            raise ValueError(f"max_peer_tokens must be >= {MIN_PEER_TOKENS}, got {self.max_peer_tokens}")
        if self.max_prompt_tokens < MIN_PROMPT_TOKENS:
            raise ValueError(
                f"max_prompt_tokens must be >= {MIN_PROMPT_TOKENS}, got {self.max_prompt_tokens}"
            )


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")


@dataclass
class GroupMember:
    """One rollout of a prompt group, as the verifier saw it."""

    response_text: str
    response_ids: list[int]
    score: float
    feedback: str = ""
    # A multi-turn rollout's episode (trajectory.episode_turns); None: a single response, shown as text.
    turns: list[Turn] | None = None


@dataclass
class PeerSelection:
    successes: list[int]
    failures: list[int]


class TeacherContextOverflow(ValueError):
    """The question plus fixed instructions alone exceed the teacher prompt budget."""

    def __init__(self, message: str, required_tokens: int, max_prompt_tokens: int):
        super().__init__(message)
        self.required_tokens = required_tokens
        self.max_prompt_tokens = max_prompt_tokens


@dataclass
class TeacherContext:
    prompt_ids: list[int]
    messages: list[dict]
    num_success_peers: int
    num_failure_peers: int
    used_feedback: bool
    masked: bool
    truncated: bool
    num_tokens: int


def is_valid_score(score: float | None) -> bool:
    """A usable verifier score is a finite number. A rollout with a missing or NaN/inf score is neither a
    success nor a failure peer, and its own sample gets a masked context."""
    return score is not None and math.isfinite(float(score))


def is_success(score: float, cfg: PeerConfig) -> bool:
    # NaN compares False, so a broken reward never passes as a success.
    return float(score) >= cfg.success_threshold


def _stable_rng(cfg: PeerConfig, uid: Any, i: int, stream: str) -> random.Random:
    # Python's hash() of str is salted per process; sha256 keeps selections identical across workers and
    # reruns. Separate streams keep the failure draw unchanged when only num_success changes.
    key = f"{cfg.seed}\x1f{uid}\x1f{i}\x1f{stream}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def _pick(
    candidates: list[int],
    count: int,
    group: Sequence[GroupMember],
    cfg: PeerConfig,
    uid: Any,
    i: int,
    stream: str,
) -> list[int]:
    count = min(count, len(candidates))
    if count == 0:
        return []
    if cfg.selection == "first":
        return candidates[:count]
    if cfg.selection == "shortest":
        return sorted(candidates, key=lambda j: (len(group[j].response_ids), j))[:count]
    return _stable_rng(cfg, uid, i, stream).sample(candidates, count)


def select_peers(group: Sequence[GroupMember], i: int, cfg: PeerConfig, uid: str) -> PeerSelection:
    """Peers for rollout `i`: indices into `group`, in the order they are rendered, never `i` itself."""
    if not 0 <= i < len(group):
        raise IndexError(f"rollout index {i} out of range for a group of {len(group)}")
    if cfg.mode == "none" or not is_valid_score(group[i].score):
        # A rollout without a valid score is masked: it needs no peers.
        return PeerSelection(successes=[], failures=[])
    if cfg.selection == "shared":
        return _shared_selection(group, i, cfg, uid)
    others = [j for j in range(len(group)) if j != i and is_valid_score(group[j].score)]
    success_pool = [j for j in others if is_success(group[j].score, cfg)]
    failure_pool = [j for j in others if not is_success(group[j].score, cfg)]
    successes = _pick(success_pool, cfg.num_success, group, cfg, uid, i, "success")
    failures: list[int] = []
    if cfg.mode == "contrastive" and (cfg.failure_condition == "always" or not successes):
        failures = _pick(failure_pool, cfg.num_failure, group, cfg, uid, i, "failure")
    return PeerSelection(successes=successes, failures=failures)


def _shared_selection(group: Sequence[GroupMember], i: int, cfg: PeerConfig, uid: str) -> PeerSelection:
    # One order per group (not per rollout): most rollouts then get the same context, the rest share long
    # prefixes with it, so the teacher's prefix cache computes each peer body about once per group.
    order = list(range(len(group)))
    _stable_rng(cfg, uid, -1, "shared").shuffle(order)
    # Rollouts with an invalid score take no part: the selection runs on the valid ones, in the same order.
    valid = [j for j in range(len(group)) if is_valid_score(group[j].score)]
    local = {j: n for n, j in enumerate(valid)}
    successes, failures = shared_peer_selection(
        [is_success(group[j].score, cfg) for j in valid],
        [local[j] for j in order if j in local],
        cfg.num_success,
        cfg.num_failure if cfg.mode == "contrastive" else 0,
        failures_only_without_success=cfg.failure_condition == "when_no_success",
    )[local[i]]
    return PeerSelection(successes=[valid[n] for n in successes], failures=[valid[n] for n in failures])


_THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def strip_thinking(text: str) -> str:
    """Drop reasoning so peers show only their final answer.

    An orphan `</think>` means the opening tag was in the prompt (Qwen3 thinking template), so everything
    before it is reasoning; an unclosed `<think>` means the response was cut off mid-thought.
    """
    text = _THINK_BLOCK.sub("", text)
    close = text.rfind("</think>")
    if close != -1:
        text = text[close + len("</think>") :]
    opening = text.find("<think>")
    if opening != -1:
        text = text[:opening]
    return text.strip()


def _as_id_list(encoded: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); older versions and
    # custom tokenizers return a list, a batch of one, or a tensor.
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    if hasattr(encoded, "tolist"):
        encoded = encoded.tolist()
    encoded = list(encoded)
    if encoded and isinstance(encoded[0], (list, tuple)):
        if len(encoded) != 1:
            raise ValueError(f"expected token ids for one conversation, got a batch of {len(encoded)}")
        encoded = list(encoded[0])
    return [int(t) for t in encoded]


def _render(tokenizer, messages: list[dict], chat_template_kwargs: dict | None) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, **(chat_template_kwargs or {})
    )
    return _as_id_list(encoded)


def _split_prompt(prompt_messages: list[dict]) -> tuple[list[dict], dict]:
    if len(prompt_messages) == 0:
        raise ValueError("prompt_messages is empty")
    last = prompt_messages[-1]
    if last.get("role") != "user":
        raise ValueError(f"the prompt must end with a user message, got role {last.get('role')!r}")
    if not isinstance(last.get("content"), str):
        raise TypeError("the last user message content must be a str (multimodal content is not supported)")
    return prompt_messages[:-1], last


@dataclass
class _Body:
    text: str
    ids: list[int]
    # Episodes cut their tool results first (trajectory.fit_episode); plain bodies keep their end.
    fit: Callable[[int], str] | None = None


@dataclass
class _GroupCache:
    """Tokenizations shared by the contexts of one group: each peer body and the plain prompt."""

    bodies: dict[int, _Body] = field(default_factory=dict)
    plain_ids: list[int] | None = None


def _peer_body(tokenizer, group: Sequence[GroupMember], j: int, cfg: PeerConfig, cache: _GroupCache) -> _Body:
    if j not in cache.bodies:
        turns = group[j].turns
        if turns is not None:
            if cfg.strip_thinking:
                turns = [Turn(t.role, strip_thinking(t.text)) if t.role == "assistant" else t for t in turns]
            episode = cfg.templates.episode
            text = render_episode(turns, episode, cfg.include_tool_results)
            fit = episode_fitter(
                tokenizer, turns, episode, cfg.templates.truncation_marker, cfg.include_tool_results
            )
            cache.bodies[j] = _Body(
                text=text, ids=list(tokenizer.encode(text, add_special_tokens=False)), fit=fit
            )
            return cache.bodies[j]
        text = group[j].response_text
        if cfg.strip_thinking:
            text = strip_thinking(text)
        cache.bodies[j] = _Body(text=text, ids=list(tokenizer.encode(text, add_special_tokens=False)))
    return cache.bodies[j]


def _truncate_body(tokenizer, body: _Body, cap: int, marker: str, marker_len: int) -> str:
    """Keep the body's end (the final answer or code lives there) behind the truncation marker."""
    if cap >= len(body.ids):
        return body.text
    if body.fit is not None:
        return body.fit(cap)
    if cap < marker_len:
        return ""
    kept_ids = body.ids[len(body.ids) - (cap - marker_len) :] if cap > marker_len else []
    tail = tokenizer.decode(kept_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    # A cut inside a multi-byte character decodes to U+FFFD.
    return marker + tail.lstrip("\ufffd")


def _water_fill(caps: list[int], target_total: int) -> list[int]:
    """Lower the longest caps first: the largest level c with sum(min(cap, c)) <= target_total."""
    lo, hi = 0, max(caps)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(c, mid) for c in caps) <= target_total:
            lo = mid
        else:
            hi = mid - 1
    return [min(c, lo) for c in caps]


def _build(
    tokenizer,
    prompt_messages: list[dict],
    group: Sequence[GroupMember],
    i: int,
    cfg: PeerConfig,
    uid: Any,
    chat_template_kwargs: dict | None,
    cache: _GroupCache,
) -> TeacherContext:
    # verl stores raw prompts as numpy object arrays of dicts; copies keep the caller's data untouched.
    prompt_messages = [dict(m) for m in prompt_messages]
    history, question_msg = _split_prompt(prompt_messages)
    question = question_msg["content"]
    budget = cfg.max_prompt_tokens

    def plain_context(masked: bool) -> TeacherContext:
        if cache.plain_ids is None:
            cache.plain_ids = _render(tokenizer, prompt_messages, chat_template_kwargs)
        ids = cache.plain_ids
        if len(ids) > budget:
            _raise_overflow(tokenizer, question, len(ids), budget)
        return TeacherContext(
            prompt_ids=list(ids),
            messages=prompt_messages,
            num_success_peers=0,
            num_failure_peers=0,
            used_feedback=False,
            masked=masked,
            truncated=False,
            num_tokens=len(ids),
        )

    if not is_valid_score(group[i].score):
        # No verifier verdict: nothing says whether the teacher should pull this rollout up or down.
        return plain_context(masked=True)
    selection = select_peers(group, i, cfg, uid)
    if cfg.mode == "none":
        return plain_context(masked=False)
    feedback = group[i].feedback or ""
    # The feedback section speaks of "your unsuccessful earlier attempt": only a failed rollout gets it.
    own_failure = not is_success(group[i].score, cfg)
    used_feedback = own_failure and not selection.successes and cfg.use_feedback and bool(feedback.strip())
    if not selection.successes and not selection.failures and not used_feedback:
        return plain_context(masked=True)

    tpl = cfg.templates
    slots = [
        (
            tpl.solution if n == 0 else tpl.another_solution,
            "{peer}",
            _peer_body(tokenizer, group, j, cfg, cache),
        )
        for n, j in enumerate(selection.successes)
    ]
    slots += [
        (tpl.failure, "{peer}", _peer_body(tokenizer, group, j, cfg, cache)) for j in selection.failures
    ]
    if used_feedback:
        # Verifier output (e.g. test logs) can be as long as a peer, so it shares the peer budgets.
        slots.append(
            (
                tpl.feedback,
                "{feedback}",
                _Body(feedback, list(tokenizer.encode(feedback, add_special_tokens=False))),
            )
        )
    marker_len = len(tokenizer.encode(tpl.truncation_marker, add_special_tokens=False))

    def render(caps: list[int]) -> tuple[list[dict], list[int]]:
        sections = [
            template.replace(
                placeholder, _truncate_body(tokenizer, body, cap, tpl.truncation_marker, marker_len)
            )
            for (template, placeholder, body), cap in zip(slots, caps)
        ]
        content = question + "".join(sections) + tpl.closing
        messages = history + [dict(question_msg, content=content)]
        return messages, _render(tokenizer, messages, chat_template_kwargs)

    full = [len(body.ids) for _, _, body in slots]
    caps = full if cfg.max_peer_tokens is None else [min(n, cfg.max_peer_tokens) for n in full]
    messages, ids = render(caps)
    if len(ids) > budget:
        _, skeleton_ids = render([0] * len(caps))
        if len(skeleton_ids) > budget:
            _raise_overflow(tokenizer, question, len(skeleton_ids), budget)
        # Token counts of the rendered prompt are not additive (BPE merges across section borders,
        # the marker appears once a body is cut), so shrink by the measured excess until it fits.
        # Every round lowers sum(caps) by at least one and all-zero caps is the skeleton, which fits.
        while len(ids) > budget:
            caps = _water_fill(caps, max(sum(caps) - (len(ids) - budget), 0))
            messages, ids = render(caps)

    return TeacherContext(
        prompt_ids=ids,
        messages=messages,
        num_success_peers=len(selection.successes),
        num_failure_peers=len(selection.failures),
        used_feedback=used_feedback,
        masked=False,
        truncated=any(c < n for c, n in zip(caps, full)),
        num_tokens=len(ids),
    )


def _raise_overflow(tokenizer, question: str, required: int, budget: int):
    question_len = len(tokenizer.encode(question, add_special_tokens=False))
    raise TeacherContextOverflow(
        f"the teacher prompt needs {required} tokens even with every peer body removed (the question alone "
        f"is {question_len} tokens, plus chat template, section headers and closing instruction), "
        f"but max_prompt_tokens={budget}; raise PeerConfig.max_prompt_tokens to at least {required} or "
        f"filter out longer prompts",
        required_tokens=required,
        max_prompt_tokens=budget,
    )


def build_teacher_context(
    tokenizer,
    prompt_messages: list[dict],
    group: Sequence[GroupMember],
    i: int,
    cfg: PeerConfig,
    uid: str,
    chat_template_kwargs: dict | None = None,
) -> TeacherContext:
    """Teacher prompt for rollout `i` of `group`: the student's chat prompt whose last user message is
    extended with peer sections (and own feedback when no success peer exists) plus the closing line.

    Peer bodies are cut to `max_peer_tokens` (None: not cut) keeping their end; if the prompt still exceeds
    `max_prompt_tokens` the longest bodies are shortened first. The question, the closing instruction
    and the generation header are never cut; `TeacherContextOverflow` is raised when they alone overflow.
    """
    return _build(tokenizer, prompt_messages, group, i, cfg, uid, chat_template_kwargs, _GroupCache())


def build_group_contexts(
    tokenizer,
    prompt_messages: list[dict],
    group: Sequence[GroupMember],
    cfg: PeerConfig,
    uid: str,
    chat_template_kwargs: dict | None = None,
) -> list[TeacherContext]:
    """`build_teacher_context` for every rollout of one group, tokenizing each peer body only once."""
    cache = _GroupCache()
    return [
        _build(tokenizer, prompt_messages, group, i, cfg, uid, chat_template_kwargs, cache)
        for i in range(len(group))
    ]
