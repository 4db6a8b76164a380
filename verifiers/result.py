"""The one result type every verifier returns, and its fixed dict shape for verl."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

# Cap on `pred`: it lands in verl's reward_extra_info for every sample and in logs.
MAX_PRED_CHARS = 1000


@dataclass(frozen=True)
class VerifierResult:
    """Outcome of checking one rollout.

    `reason` is a short machine-readable failure code ("" on success) so failure modes can be
    counted; `feedback` is prose that may be shown to a teacher and so never quotes hidden tests or
    the hidden answer. `partial`, `n_checks` and `n_passed` carry partial-credit detail for
    analysis (tests passed, tool calls matched); the score itself stays binary.
    """

    score: float
    acc: bool
    pred: str = ""
    format_ok: bool = True
    feedback: str = ""
    reason: str = ""
    partial: float = 0.0
    n_checks: int = 1
    n_passed: int = 0

    @classmethod
    def success(cls, pred: str = "", feedback: str = "Correct.", **details: Any) -> VerifierResult:
        details.setdefault("partial", 1.0)
        details.setdefault("n_passed", details.get("n_checks", 1))
        return cls(score=1.0, acc=True, pred=pred, format_ok=True, feedback=feedback, reason="", **details)

    @classmethod
    def failure(
        cls, reason: str, feedback: str, pred: str = "", format_ok: bool = True, **details: Any
    ) -> VerifierResult:
        return cls(
            score=0.0, acc=False, pred=pred, format_ok=format_ok, feedback=feedback, reason=reason, **details
        )

    @classmethod
    def coerce(cls, value: Any) -> VerifierResult:
        """Accept what a user verifier may reasonably return: a result, a dict, a bool or a number."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
            score = float(value)
            return cls(score=score, acc=score > 0, partial=score, n_passed=int(score > 0))
        if isinstance(value, dict) and "score" in value:
            known = {f.name for f in fields(cls)}
            dropped = sorted(set(value) - known - {"verifier"})
            if dropped:
                # verl builds one array per key; a key only some rows have would break the batch.
                logger.warning(
                    "verifier result keys %s dropped: every verifier must return the same keys", dropped
                )
            score = float(value["score"])
            kwargs = {key: value[key] for key in known & set(value)}
            kwargs["score"] = score
            kwargs.setdefault("acc", score > 0)
            kwargs.setdefault("partial", score)
            kwargs.setdefault("n_passed", int(kwargs["acc"]))
            return cls(**kwargs)
        raise TypeError(
            f"a verifier must return VerifierResult, a dict with 'score', or a number; got {value!r}"
        )

    def to_dict(self, verifier: str) -> dict[str, Any]:
        """The reward dict handed to verl: the same scalar keys for every verifier."""
        row = asdict(self)
        row["score"] = float(self.score)
        row["acc"] = bool(self.acc)
        row["format_ok"] = bool(self.format_ok)
        row["pred"] = str(self.pred)[:MAX_PRED_CHARS]
        row["feedback"] = str(self.feedback)
        row["reason"] = str(self.reason)
        row["partial"] = float(self.partial)
        row["n_checks"] = int(self.n_checks)
        row["n_passed"] = int(self.n_passed)
        row["verifier"] = verifier
        return row


RESULT_KEYS = (*(f.name for f in fields(VerifierResult)), "verifier")
