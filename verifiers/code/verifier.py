"""Code verifier: run the response's program on the ground-truth tests in a sandbox.

Success only if every test passes. The program is the response's final fenced block (`extract`
policy "last", or "longest" as MOPD does). Tests run in one sandboxed harness per chunk of tests;
chunks of one program and different programs run in parallel up to `workers`, and the first
failure cancels the rest (`stop_on_failure`); public tests run before hidden ones. Feedback quotes a failing test only when it is
public (the ground truth's leading `public` tests); for hidden tests it only says how many failed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from verifiers.code.backends import default_workers, get_backend
from verifiers.code.compare import (
    EXACT,
    FloatTolerance,
    call_result_matches,
    describe_call_result,
    stdout_matches,
)
from verifiers.code.extract import extract_code
from verifiers.code.protocol import HarnessJob, RunReport, SandboxBackend, TestOutcome
from verifiers.code.tests_spec import CodeTests, parse_code_tests
from verifiers.errors import VerifierConfigError
from verifiers.registry import register_verifier
from verifiers.result import VerifierResult
from verifiers.thinking import final_answer_region

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 6.0
# Below this many tests per sandbox, a second sandbox costs more start-up than it saves.
MIN_TESTS_PER_CHUNK = 4
EXCERPT_CHARS = 800
STATUS_LABELS = {
    "wrong_answer": "wrong answer",
    "runtime_error": "runtime error",
    "timeout": "time limit exceeded",
    "output_limit": "output limit exceeded",
    "memory_limit": "memory limit exceeded",
}


@dataclass(frozen=True)
class TestVerdict:
    index: int
    status: str  # passed, or a key of STATUS_LABELS
    actual: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def grade_outcome(outcome: TestOutcome, tests: CodeTests, tolerance: FloatTolerance = EXACT) -> TestVerdict:
    if outcome.status != "ok":
        return TestVerdict(outcome.index, outcome.status, outcome.stdout, outcome.stderr)
    expected = tests.expected[outcome.index]
    if tests.fn_name is None:
        passed = stdout_matches(outcome.stdout, expected, tolerance)
        return TestVerdict(
            outcome.index, "passed" if passed else "wrong_answer", outcome.stdout, outcome.stderr
        )
    if not outcome.result:
        return TestVerdict(
            outcome.index, "runtime_error", "", outcome.stderr or "The program exited before returning."
        )
    passed = call_result_matches(outcome.result, expected, tolerance)
    actual = describe_call_result(outcome.result)
    return TestVerdict(outcome.index, "passed" if passed else "wrong_answer", actual, outcome.stderr)


class _Grader:
    """Grades outcomes as they stream in from any number of concurrent runs."""

    def __init__(self, tests: CodeTests, stop_on_failure: bool, tolerance: FloatTolerance = EXACT) -> None:
        self.tests = tests
        self.tolerance = tolerance
        self.stop_on_failure = stop_on_failure
        self.verdicts: dict[int, TestVerdict] = {}
        self.cancel = threading.Event()
        self._lock = threading.Lock()

    def on_outcome(self, outcome: TestOutcome) -> bool:
        verdict = grade_outcome(outcome, self.tests, self.tolerance)
        with self._lock:
            self.verdicts[verdict.index] = verdict
        if not verdict.passed and self.stop_on_failure:
            self.cancel.set()
            return False
        return not self.cancel.is_set()


def plan_chunks(n_tests: int, public: int, workers: int, split: bool) -> list[range]:
    """Public and hidden tests never share a sandbox, so a public test's process never holds
    hidden inputs in memory; each part is split further when there are workers to spare."""
    parts = [part for part in (range(public), range(public, n_tests)) if len(part)]
    if not split or workers <= 1:
        return parts
    chunks = []
    for part in parts:
        count = max(1, min(workers, len(part) // MIN_TESTS_PER_CHUNK))
        size = math.ceil(len(part) / count)
        chunks += [range(start, min(start + size, part.stop)) for start in range(part.start, part.stop, size)]
    return chunks


def run_jobs(
    sandbox: SandboxBackend, jobs: list[HarnessJob], grader: _Grader, public: int
) -> list[RunReport]:
    """Public tests first: when one fails, that is the failure the feedback can describe, and the
    hidden tests need not run at all."""
    phases = [
        [job for job in jobs if job.first_index < public],
        [job for job in jobs if job.first_index >= public],
    ]
    reports: list[RunReport] = []
    for phase in phases:
        if not phase or grader.cancel.is_set() or any(report.compile_error for report in reports):
            continue
        if len(phase) == 1:
            reports.append(sandbox.run(phase[0], grader.on_outcome, grader.cancel))
            continue
        with ThreadPoolExecutor(max_workers=len(phase), thread_name_prefix="code-tests") as pool:
            reports += pool.map(lambda job: sandbox.run(job, grader.on_outcome, grader.cancel), phase)
    return reports


@register_verifier("code")
def verify_code(
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    backend: str = "local",
    timeout: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    extract: str = "last",
    stop_on_failure: bool = True,
    split_tests: bool = True,
    memory_mb: int = 2048,
    output_limit_mb: int = 16,
    backend_options: Mapping[str, Any] | None = None,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
) -> VerifierResult:
    """Options: `backend` local | e2b | sandbox_fusion (settings in `backend_options`); `timeout`
    per test when the ground truth has no time_limit; `workers` concurrent sandboxes; `extract`
    last | longest; `stop_on_failure`; `split_tests` across workers; `memory_mb` and
    `output_limit_mb` per test; `abs_tol` / `rel_tol` a float tolerance for real-valued outputs
    (default 0: exact, as LiveCodeBench grades; a test spec's own `abs_tol` / `rel_tol` win).
    Raises VerifierConfigError for a malformed test spec or a negative tolerance."""
    tests = parse_code_tests(ground_truth)
    try:
        tolerance = tests.tolerance(abs_tol, rel_tol)
    except ValueError as error:
        raise VerifierConfigError(f"code verifier option: {error}") from None
    region = final_answer_region(solution_str)
    program = extract_code(region, extract) if region is not None else None
    if program is None:
        return VerifierResult.failure(
            "no_code_block",
            "No complete code block found: give the full program in one ```python fenced block.",
            format_ok=False,
            n_checks=len(tests),
        )
    sandbox = get_backend(backend, workers, backend_options)
    time_limit = tests.time_limit or timeout
    chunks = plan_chunks(len(tests), tests.public, workers or default_workers(), split_tests)
    jobs = [
        HarnessJob(
            code=tests.program_under_test(program),
            fn_name=tests.fn_name,
            inputs=tests.inputs[chunk.start : chunk.stop],
            first_index=chunk.start,
            timeout=time_limit,
            memory_bytes=memory_mb << 20,
            output_bytes=output_limit_mb << 20,
            stop_on_error=stop_on_failure,
        )
        for chunk in chunks
    ]
    grader = _Grader(tests, stop_on_failure, tolerance)
    reports = run_jobs(sandbox, jobs, grader, tests.public)
    return summarize(tests, grader.verdicts, reports, time_limit, program)


def summarize(
    tests: CodeTests,
    verdicts: dict[int, TestVerdict],
    reports: list[RunReport],
    time_limit: float,
    program: str,
) -> VerifierResult:
    n_tests = len(tests)
    compile_error = next((report.compile_error for report in reports if report.compile_error), None)
    if compile_error:
        return VerifierResult.failure(
            "compile_error", _compile_feedback(compile_error, tests, program), pred=program, n_checks=n_tests
        )
    passed = sum(verdict.passed for verdict in verdicts.values())
    details = {"n_checks": n_tests, "n_passed": passed, "partial": passed / n_tests}
    if passed == n_tests:
        return VerifierResult.success(pred=program, feedback=f"All {n_tests} tests passed.", **details)
    failures = sorted((v for v in verdicts.values() if not v.passed), key=lambda verdict: verdict.index)
    if not failures:
        errors = "; ".join(report.error for report in reports if report.error)
        logger.warning("code sandbox run failed: %s", errors)
        return VerifierResult.failure(
            "sandbox_error",
            "The run was cut short before every test finished (the program may have killed its test runner).",
            pred=program,
            **details,
        )
    first = failures[0]
    if tests.is_public(first.index):
        feedback = _public_failure(tests, first, time_limit)
    elif len(verdicts) < n_tests:
        feedback = (
            f"{passed} of {n_tests} tests passed before a hidden test failed "
            f"({STATUS_LABELS[first.status]}); the remaining tests were not run."
        )
    else:
        feedback = (
            f"{len(failures)} of {n_tests} tests failed (the first with: {STATUS_LABELS[first.status]}); "
            "the failing tests are hidden."
        )
    return VerifierResult.failure(first.status, feedback, pred=program, **details)


def _compile_feedback(compile_error: str, tests: CodeTests, program: str) -> str:
    """The compiler's message, unless it points into the hidden suffix, whose source it would quote."""
    if tests.program_suffix:
        line = re.search(r"line (\d+)", compile_error)
        if line is None or int(line[1]) > tests.visible_line_count(program):
            return "The program does not compile: it ends inside an unfinished statement, string or bracket."
    return "The program does not compile:\n" + _tail(compile_error)


def _public_failure(tests: CodeTests, verdict: TestVerdict, time_limit: float) -> str:
    index = verdict.index
    parts = [
        f"Test {index + 1} of {len(tests)} failed: {STATUS_LABELS[verdict.status]}.",
        "Input:\n" + _head(tests.inputs[index]),
    ]
    if verdict.status == "wrong_answer":
        expected = tests.expected[index]
        expected_text = expected if tests.fn_name is None else json.dumps(expected)
        parts += ["Expected output:\n" + _head(expected_text), "Your output:\n" + _head(verdict.actual)]
    elif verdict.status == "timeout":
        parts.append(f"The program did not finish within {time_limit:g} s.")
    elif verdict.status == "runtime_error":
        parts.append("Error:\n" + _tail(verdict.stderr))
    elif verdict.status == "memory_limit":
        parts.append("The program's processes together used more memory than allowed.")
    else:
        parts.append("The program printed more output than allowed.")
    return "\n".join(parts)


def _head(text: str) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "\n… (truncated)"


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else "… " + text[-EXCERPT_CHARS:]
