"""Pluggable verifiers: a rollout in, success or failure plus safe feedback out.

Built-in verifiers: "math", "code", "science", "tool". The verl entry point is
`verifiers.verl_reward.compute_score`; `verify_batch` scores many rollouts at once; user verifiers
are added with `@register_verifier("name")`.
"""

from verifiers.errors import (
    GroundTruthError,
    SandboxUnavailableError,
    UnknownVerifierError,
    VerifierConfigError,
)
from verifiers.registry import (
    available_verifiers,
    get_verifier,
    register_verifier,
    route,
    unregister_verifier,
)
from verifiers.result import RESULT_KEYS, VerifierResult

# Importing the built-ins registers them.
from verifiers import code, math_verifier, science, tool  # noqa: F401  isort: skip
from verifiers.batch import verify_batch
from verifiers.verl_reward import compute_score

__all__ = [
    "RESULT_KEYS",
    "GroundTruthError",
    "SandboxUnavailableError",
    "UnknownVerifierError",
    "VerifierConfigError",
    "VerifierResult",
    "available_verifiers",
    "compute_score",
    "get_verifier",
    "register_verifier",
    "route",
    "unregister_verifier",
    "verify_batch",
]
