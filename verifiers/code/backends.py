"""Backend name → a shared instance (instances own the concurrency limits, so they are reused)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from verifiers.code.protocol import SandboxBackend
from verifiers.errors import VerifierConfigError

BACKENDS = ("local", "e2b", "sandbox_fusion")

_instances: dict[str, SandboxBackend] = {}
_lock = threading.Lock()


def default_workers() -> int:
    return os.cpu_count() or 1


def get_backend(
    name: str, workers: int | None = None, options: Mapping[str, Any] | None = None
) -> SandboxBackend:
    """`workers` bounds concurrent local sandboxes; remote backends take `max_concurrency` in options."""
    options = dict(options or {})
    key = json.dumps([name, workers, options], sort_keys=True, default=str)
    with _lock:
        backend = _instances.get(key)
        if backend is None:
            backend = _instances[key] = _create(name, workers, options)
        return backend


def _create(name: str, workers: int | None, options: dict[str, Any]) -> SandboxBackend:
    if name == "local":
        from verifiers.code.sandbox_local import LocalSandbox

        return LocalSandbox(max_concurrency=workers or default_workers(), **options)
    if name == "e2b":
        from verifiers.code.sandbox_e2b import E2BSandbox

        return E2BSandbox(**options)
    if name == "sandbox_fusion":
        from verifiers.code.sandbox_fusion import SandboxFusionSandbox

        return SandboxFusionSandbox(**options)
    raise VerifierConfigError(f"unknown code backend {name!r}; use one of {BACKENDS}")
