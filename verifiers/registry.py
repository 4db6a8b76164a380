"""Name → verifier registry, in verl's decorator idiom, plus data_source routing.

A verifier is any callable `fn(solution_str, ground_truth, extra_info=None, **options)` returning a
`VerifierResult` (a dict with "score", a bool or a number are accepted too). Register it with
`@register_verifier("name")`, or refer to it as "package.module:function" so that user code living
in another module is imported on first use.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from verifiers.errors import UnknownVerifierError

Verifier = Callable[..., Any]

_REGISTRY: dict[str, Verifier] = {}
_LOCK = threading.Lock()


def register_verifier(name: str) -> Callable[[Verifier], Verifier]:
    if not name or ":" in name or "/" in name:
        raise ValueError(f"verifier name {name!r} must be non-empty and contain neither ':' nor '/'")

    def decorator(fn: Verifier) -> Verifier:
        with _LOCK:
            if name in _REGISTRY:
                raise ValueError(f"verifier {name!r} is already registered (by {_describe(_REGISTRY[name])})")
            _REGISTRY[name] = fn
        return fn

    return decorator


def unregister_verifier(name: str) -> None:
    """Remove a user verifier (tests and notebooks re-register under the same name)."""
    with _LOCK:
        _REGISTRY.pop(name, None)


def available_verifiers() -> list[str]:
    return sorted(_REGISTRY)


def get_verifier(name: str) -> Verifier:
    """A registered verifier by name, or a "module.path:function" reference (imported on demand)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _import_reference(name)
    raise UnknownVerifierError(
        f"unknown verifier {name!r}; registered: {available_verifiers()} "
        "(or pass 'module.path:function' to use a verifier defined elsewhere)"
    )


def route(data_source: str, extra_info: Mapping[str, Any] | None = None) -> str:
    """Which verifier grades a row: `extra_info["verifier"]`, else the `data_source` prefix before '/'."""
    if extra_info and extra_info.get("verifier"):
        return str(extra_info["verifier"])
    prefix = str(data_source).split("/", 1)[0]
    if prefix in _REGISTRY:
        return prefix
    raise UnknownVerifierError(
        f"cannot route data_source {data_source!r}: its prefix {prefix!r} is not a registered verifier "
        f"{available_verifiers()}; name one in extra_info['verifier'] or use a data_source like 'math/aime'"
    )


def _import_reference(reference: str) -> Verifier:
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownVerifierError(
            f"verifier reference {reference!r}: cannot import {module_name!r}: {error}"
        ) from error
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise UnknownVerifierError(
            f"verifier reference {reference!r}: {module_name} has no callable {attribute!r}"
        )
    return fn


def _describe(fn: Verifier) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
