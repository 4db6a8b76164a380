import json
import os
import time

import psutil
import pytest

from verifiers.code.backends import get_backend
from verifiers.code.sandbox_local import NOBODY, UNSHARE_UID_BASE
from verifiers.errors import SandboxUnavailableError


def _code_ground_truth(inputs, outputs, fn_name=None, public=0, time_limit=None):
    spec = {"inputs": inputs, "outputs": outputs, "fn_name": fn_name, "public": public}
    if time_limit is not None:
        spec["time_limit"] = time_limit
    return json.dumps(spec)


def _fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


@pytest.fixture
def code_gt():
    """Builds a code ground-truth JSON string."""
    return _code_ground_truth


@pytest.fixture
def fenced():
    """Wraps a program in a response with one python fenced block."""
    return _fenced


@pytest.fixture(scope="session")
def local_sandbox():
    """The local backend, or a skip on a machine that cannot isolate code at all."""
    sandbox = get_backend("local")
    try:
        assert sandbox.isolation.mechanism in ("bwrap", "unshare", "none")
    except SandboxUnavailableError as error:
        pytest.skip(f"no code sandbox on this machine: {error}")
    return sandbox


def _sandbox_processes(since: float) -> list[psutil.Process]:
    """Sandbox processes started after `since` by this test session: ours still hanging below us,
    or orphans. Live sandboxes of another session running at the same time are not ours."""
    found = []
    for process in psutil.process_iter(["uids", "create_time", "status"]):
        try:
            uid = process.info["uids"].real
            if not (uid == NOBODY or uid >= UNSHARE_UID_BASE) or process.info["create_time"] < since - 1:
                continue
            ancestors = [parent.pid for parent in process.parents()]
        except (psutil.Error, TypeError):
            continue
        if os.getpid() in ancestors or ancestors in ([], [1]):
            found.append(process)
    return found


@pytest.fixture
def no_leftover_processes():
    """Fails the test if any sandbox process outlives it (after a short grace period for the kernel
    to tear a namespace down)."""
    started = time.time()
    yield
    deadline = time.monotonic() + 5
    while (leftovers := _sandbox_processes(started)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftovers, [(p.pid, p.info["status"], " ".join(p.cmdline())[:120]) for p in leftovers]


@pytest.fixture
def processes_with_marker():
    return _processes_with_marker


def _processes_with_marker(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if marker.encode() in cmdline.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids
