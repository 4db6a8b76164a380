"""A small pool of long-lived math-verify processes that are SIGKILLed at a deadline.

Why not a ProcessPoolExecutor: it cannot kill a task stuck in sympy, and a stuck worker then blocks
`shutdown()` forever. Why not multiprocessing at all: forking a threaded Ray actor is unsafe. So each
worker is a plain `subprocess.Popen` of `math_worker.py` speaking JSON lines; a check that overruns
its deadline gets the worker killed and reaped, and the next check starts a fresh one.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WORKER_SCRIPT = Path(__file__).with_name("math_worker.py")
# Importing sympy + math-verify takes about a second, several under load; this is not check time.
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class MathCheck:
    equal: bool
    timed_out: bool = False
    error: str = ""


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            bufsize=0,  # unbuffered: a request to a dead worker fails at once, not at a later flush
        )
        self._buffer = b""
        ready = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if ready is None or not json.loads(ready).get("ready"):
            self.kill()
            raise RuntimeError("math-verify worker did not start (is math-verify installed?)")

    def ask(self, gold: str, pred: str, timeout_s: float) -> MathCheck:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"gold": gold, "pred": pred}) + "\n").encode())
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            raise TimeoutError
        reply = json.loads(line)
        return MathCheck(equal=bool(reply.get("equal")), error=reply.get("error", ""))

    def _read_line(self, deadline: float) -> str | None:
        """One reply line, or None at the deadline; raises EOFError when the worker died."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("math-verify worker exited")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class MathVerifyPool:
    """At most `size` concurrent math-verify checks, each bounded by its own deadline."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()

    def check(self, gold: str, pred: str, timeout_s: float) -> MathCheck:
        with self._slots:
            # A second attempt covers an idle worker that died in the meantime (OOM killer, a test).
            for _ in range(2):
                worker = self._take_worker()
                try:
                    result = worker.ask(gold, pred, timeout_s)
                except TimeoutError:
                    self._discard(worker)
                    return MathCheck(equal=False, timed_out=True)
                except (EOFError, OSError, ValueError) as error:
                    self._discard(worker)
                    failure = error
                    continue
                self._idle.put(worker)
                return result
            return MathCheck(equal=False, error=f"math-verify worker failed: {failure}")

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.kill()

    def _take_worker(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker()
            with self._lock:
                self._workers.add(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)


_pools: dict[tuple[int, int], MathVerifyPool] = {}
_pools_lock = threading.Lock()


def shared_pool(size: int) -> MathVerifyPool:
    """The process-wide pool of that size; a forked child gets its own, never its parent's pipes."""
    key = (os.getpid(), size)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = MathVerifyPool(size)
        return pool


def _close_all() -> None:
    for (pid, _), pool in list(_pools.items()):
        if pid == os.getpid():
            pool.close()


atexit.register(_close_all)
