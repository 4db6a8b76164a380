"""verl custom reward function: route each rollout to its verifier and return the reward dict.

    reward.custom_reward_function.path=<repo>/verifiers/verl_reward.py
    reward.custom_reward_function.name=compute_score
    # optional, per verifier:
    +reward.custom_reward_function.reward_kwargs.verifier_options.code.workers=8

verl loads this file by path (not as `verifiers.verl_reward`), hence the absolute imports: the
`verifiers` package itself must be installed (`pip install -e .`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import verifiers  # noqa: F401  (registers the built-in verifiers)
from verifiers.errors import VerifierConfigError
from verifiers.registry import get_verifier, route
from verifiers.result import VerifierResult

logger = logging.getLogger(__name__)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    verifier_options: Mapping[str, Mapping[str, Any]] | None = None,
    **_verl_kwargs: Any,
) -> dict[str, Any]:
    """Score one rollout: `{"score", "acc", "pred", "format_ok", "feedback", "reason", "partial",
    "n_checks", "n_passed", "verifier"}`, the same keys for every verifier.

    `verifier_options` maps a verifier name to its keyword options (e.g. `{"code": {"workers": 8}}`).
    Other keyword arguments verl passes (reward-model addresses and the like) are ignored.
    Raises `VerifierConfigError` for an unknown verifier, bad options or a malformed ground truth;
    never for a bad model output: a verifier that crashes scores 0 with reason "verifier_error".
    """
    extra_info = dict(extra_info) if extra_info is not None else {}
    name = route(data_source, extra_info)
    verifier = get_verifier(name)
    options = _plain((verifier_options or {}).get(name) or {})
    try:
        inspect.signature(verifier).bind("", ground_truth, extra_info, **options)
    except TypeError as error:
        raise VerifierConfigError(f"bad options for verifier {name!r}: {error}") from None
    response = (
        solution_str if isinstance(solution_str, str) else ("" if solution_str is None else str(solution_str))
    )
    try:
        result = VerifierResult.coerce(verifier(response, ground_truth, extra_info, **options))
    except VerifierConfigError:
        raise
    except Exception:
        logger.exception("verifier %r crashed on a %s rollout; scoring it 0", name, data_source)
        result = VerifierResult.failure("verifier_error", "The response could not be checked.")
    return result.to_dict(name)


def _plain(value: Any) -> Any:
    """OmegaConf containers (verl's reward_kwargs) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value
