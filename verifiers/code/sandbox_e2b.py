"""E2B cloud sandboxes (`pip install mopd[e2b]`, `E2B_API_KEY`).

One microVM per run: the harness and the job are uploaded, the harness runs once over all the
tests, and the sandbox is killed whatever happens. Creation is retried with exponential backoff on
rate limits (HTTP 429: the free tier allows 20 concurrent sandboxes) and concurrency is capped below
that.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from verifiers.code.protocol import HARNESS_SOURCE, HarnessJob, OutcomeCallback, ReportReader, RunReport
from verifiers.errors import SandboxUnavailableError

logger = logging.getLogger(__name__)

# The default template's home directory: it exists, so no directory needs creating first.
WORKDIR = "/home/user"
# The sandbox lifetime must outlast the run plus upload and teardown.
LIFETIME_MARGIN_S = 60


def _is_rate_limit(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return "ratelimit" in text or "rate limit" in text or "429" in text


class E2BSandbox:
    name = "e2b"

    def __init__(
        self,
        max_concurrency: int = 16,
        api_key: str | None = None,
        template: str | None = None,
        retries: int = 5,
        backoff_s: float = 2.0,
        allow_internet_access: bool = False,
    ) -> None:
        self.api_key = api_key or os.environ.get("E2B_API_KEY")
        if not self.api_key:
            raise SandboxUnavailableError(
                "the e2b backend needs E2B_API_KEY (or backend_options={'api_key': ...})"
            )
        self.template = template
        self.retries = retries
        self.backoff_s = backoff_s
        self.allow_internet_access = allow_internet_access
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def run(
        self, job: HarnessJob, on_outcome: OutcomeCallback, cancel: threading.Event | None = None
    ) -> RunReport:
        reader = ReportReader(on_outcome)
        try:
            from e2b_code_interpreter import Sandbox
        except ImportError:
            raise SandboxUnavailableError(
                "the e2b backend needs e2b-code-interpreter: pip install 'mopd[e2b]'"
            ) from None
        with self._slots:
            if cancel is not None and cancel.is_set():
                reader.stopped = True
                return reader.finish()
            try:
                sandbox = self._create(Sandbox, job)
            except TypeError as error:  # an SDK too old for allow_internet_access: never run with network
                raise SandboxUnavailableError(
                    f"e2b-code-interpreter does not accept the sandbox options: {error}"
                ) from None
            except Exception as error:
                return reader.finish(f"could not create an E2B sandbox: {type(error).__name__}: {error}")
            try:
                stdout = self._execute(sandbox, job)
            except Exception as error:
                return reader.finish(f"E2B run failed: {type(error).__name__}: {error}")
            finally:
                try:
                    sandbox.kill()
                except Exception as error:  # a leaked sandbox still dies at the end of its lifetime
                    logger.warning("could not kill E2B sandbox: %s", error)
        reader.feed_text(stdout)
        return reader.finish()

    def _create(self, sandbox_class: Any, job: HarnessJob) -> Any:
        options: dict[str, Any] = {
            "api_key": self.api_key,
            "timeout": int(job.deadline_s + LIFETIME_MARGIN_S),
            "allow_internet_access": self.allow_internet_access,
        }
        if self.template:
            options["template"] = self.template
        for attempt in range(self.retries):
            try:
                return sandbox_class.create(**options)
            except Exception as error:
                if not _is_rate_limit(error):
                    raise
                delay = self.backoff_s * 2**attempt
                logger.info("E2B rate limit, retrying in %.1f s", delay)
                time.sleep(delay)
        return sandbox_class.create(**options)

    def _execute(self, sandbox: Any, job: HarnessJob) -> str:
        sandbox.files.write(f"{WORKDIR}/mopd_harness.py", HARNESS_SOURCE)
        sandbox.files.write(f"{WORKDIR}/mopd_job.json", job.to_json().decode())
        command = f"cd {WORKDIR} && python3 -I mopd_harness.py < mopd_job.json"
        try:
            result = sandbox.commands.run(command, timeout=job.deadline_s)
        except Exception as error:
            # CommandExitException (non-zero exit) still carries the output; anything else is a failure.
            if hasattr(error, "stdout") and hasattr(error, "exit_code"):
                return str(error.stdout or "")
            raise
        return str(result.stdout or "")
