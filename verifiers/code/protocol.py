"""What every sandbox backend exchanges with `harness.py`, and the interface they share.

A backend only has to start the harness somewhere isolated, feed it a `HarnessJob` as JSON on stdin
and turn its report lines into `TestOutcome`s; grading happens in the caller's process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class HarnessJob:
    """One program and a contiguous slice of its tests (`first_index` is the slice's offset)."""

    code: str
    fn_name: str | None
    inputs: list[str]
    first_index: int
    timeout: float
    memory_bytes: int
    output_bytes: int
    max_processes: int = 32
    max_open_files: int = 128
    file_size_bytes: int = 64 << 20
    stop_on_error: bool = True
    # Kill every other process after each test: only safe inside a private PID namespace.
    sweep: bool = False
    drop_to: tuple[int, int] | None = None

    def to_json(self, **overrides: object) -> bytes:
        return json.dumps({**asdict(self), **overrides}).encode()

    @property
    def deadline_s(self) -> float:
        """Outer wall-clock bound for the whole job; the harness enforces the per-test timeouts."""
        return SANDBOX_STARTUP_S + len(self.inputs) * (self.timeout + 1.0)


# Generous: the first sandbox on a loaded machine, or an E2B cold start, can take seconds.
SANDBOX_STARTUP_S = 15.0


@dataclass(frozen=True)
class TestOutcome:
    index: int
    status: str  # ok | runtime_error | timeout | output_limit | memory_limit
    stdout: str = ""
    result: str = ""
    stderr: str = ""
    time: float = 0.0
    exit: int | None = None


@dataclass
class RunReport:
    compile_error: str | None = None
    # Set when the sandbox itself failed (deadline, crash, backend error), not the program's tests.
    error: str | None = None
    finished: bool = False
    outcomes: list[TestOutcome] = field(default_factory=list)


OutcomeCallback = Callable[[TestOutcome], bool]
"""Called per test as results arrive; returning False stops the run (first failure found)."""


class SandboxBackend(Protocol):
    name: str

    def run(
        self, job: HarnessJob, on_outcome: OutcomeCallback, cancel: threading.Event | None = None
    ) -> RunReport: ...


class ReportReader:
    """Turns harness report lines into a RunReport, calling back per test; says when to stop."""

    def __init__(self, on_outcome: OutcomeCallback) -> None:
        self.report = RunReport()
        self._on_outcome = on_outcome
        self.stopped = False

    def feed_line(self, line: bytes | str) -> bool:
        """Handle one line; False once nothing more is wanted."""
        if not line.strip():
            return True
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            self.report.error = "the sandbox harness wrote an unreadable report line"
            return False
        if "compile_error" in event:
            self.report.compile_error = str(event["compile_error"])
            return False
        if event.get("done"):
            self.report.finished = True
            return False
        outcome = TestOutcome(**{key: event[key] for key in TestOutcome.__dataclass_fields__ if key in event})
        self.report.outcomes.append(outcome)
        if not self._on_outcome(outcome):
            self.stopped = True
            return False
        return True

    def feed_text(self, text: str) -> None:
        """For backends that return the whole harness stdout at once."""
        for line in text.splitlines():
            if not self.feed_line(line):
                break

    def finish(self, failure: str | None = None) -> RunReport:
        if not (self.report.finished or self.stopped or self.report.compile_error or self.report.error):
            self.report.error = failure or "the sandbox stopped before reporting every test"
        return self.report
