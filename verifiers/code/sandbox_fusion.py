"""A SandboxFusion service (bytedance/SandboxFusion) reached over HTTP.

Unlike verl's client, which makes one request per test and compares stdout verbatim, this sends the
harness once per run (the job on stdin) and grades with the shared LiveCodeBench comparator.
The URL comes from `backend_options={"url": ...}` or SANDBOX_FUSION_URL.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request

from verifiers.code.protocol import HARNESS_SOURCE, HarnessJob, OutcomeCallback, ReportReader, RunReport
from verifiers.errors import SandboxUnavailableError

logger = logging.getLogger(__name__)

URL_ENV = "SANDBOX_FUSION_URL"
RETRYABLE_HTTP = {429, 500, 502, 503, 504}
REQUEST_MARGIN_S = 30.0


class SandboxFusionSandbox:
    name = "sandbox_fusion"

    def __init__(
        self,
        url: str | None = None,
        max_concurrency: int = 32,
        retries: int = 3,
        backoff_s: float = 1.0,
        memory_limit_mb: int | None = None,
    ) -> None:
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise SandboxUnavailableError(
                f"the sandbox_fusion backend needs a URL: backend_options={{'url': ...}} or {URL_ENV}"
            )
        self.endpoint = url if url.rstrip("/").endswith("/run_code") else url.rstrip("/") + "/run_code"
        self.retries = retries
        self.backoff_s = backoff_s
        self.memory_limit_mb = memory_limit_mb
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def run(
        self, job: HarnessJob, on_outcome: OutcomeCallback, cancel: threading.Event | None = None
    ) -> RunReport:
        reader = ReportReader(on_outcome)
        payload = {
            "code": HARNESS_SOURCE,
            "language": "python",
            "stdin": job.to_json().decode(),
            "compile_timeout": 10,
            "run_timeout": job.deadline_s,
            # The harness caps each test's memory itself; this bounds the whole process tree.
            "memory_limit_MB": self.memory_limit_mb or (job.memory_bytes >> 20) + 512,
            "files": {},
            "fetch_files": [],
        }
        with self._slots:
            if cancel is not None and cancel.is_set():
                reader.stopped = True
                return reader.finish()
            try:
                response = self._post(payload, timeout=job.deadline_s + REQUEST_MARGIN_S)
            except (OSError, ValueError) as error:
                return reader.finish(f"SandboxFusion request failed: {error}")
        run_result = response.get("run_result") or {}
        reader.feed_text(str(run_result.get("stdout") or ""))
        if run_result.get("status") == "TimeLimitExceeded":
            return reader.finish(f"SandboxFusion stopped the run at its {job.deadline_s:.0f} s deadline")
        if response.get("status") == "SandboxError":
            return reader.finish(f"SandboxFusion error: {response.get('message', '')}")
        return reader.finish()

    def _post(self, payload: dict, timeout: float) -> dict:
        body = json.dumps(payload).encode()
        for attempt in range(self.retries):
            try:
                return self._post_once(body, timeout)
            except urllib.error.HTTPError as error:
                if error.code not in RETRYABLE_HTTP:
                    raise
            except urllib.error.URLError:
                pass
            delay = self.backoff_s * 2**attempt
            logger.info("SandboxFusion busy or unreachable, retrying in %.1f s", delay)
            time.sleep(delay)
        return self._post_once(body, timeout)

    def _post_once(self, body: bytes, timeout: float) -> dict:
        request = urllib.request.Request(
            self.endpoint, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())
