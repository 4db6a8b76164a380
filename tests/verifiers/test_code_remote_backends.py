"""The E2B and SandboxFusion backends, against a mocked SDK and a local stub server (no network).

Both fakes really run the harness (unsandboxed: the programs here are benign and hand-written), so
the whole protocol is exercised; only the remote service is simulated.
"""

import json
import subprocess
import sys
import tempfile
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from verifiers.code.verifier import verify_code
from verifiers.errors import SandboxUnavailableError
from verifiers.verl_reward import compute_score

ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
SUB = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"


def run_harness(source: str, stdin: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-c", source],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


class RateLimitException(Exception):
    pass


class CommandExitException(Exception):
    def __init__(self, stdout, exit_code):
        super().__init__(f"exit {exit_code}")
        self.stdout, self.exit_code = stdout, exit_code


class FakeE2BSandbox:
    """Just enough of e2b_code_interpreter.Sandbox: create / files.write / commands.run / kill."""

    lock = threading.Lock()
    rate_limited_creates = 0
    live = 0
    max_live = 0
    created: ClassVar[list["FakeE2BSandbox"]] = []
    fail_commands = False

    @classmethod
    def reset(cls):
        cls.rate_limited_creates, cls.live, cls.max_live, cls.created, cls.fail_commands = 0, 0, 0, [], False

    @classmethod
    def create(cls, **options):
        with cls.lock:
            if cls.rate_limited_creates:
                cls.rate_limited_creates -= 1
                raise RateLimitException("429: rate limit exceeded")
            sandbox = cls(options)
            cls.created.append(sandbox)
            cls.live += 1
            cls.max_live = max(cls.max_live, cls.live)
            return sandbox

    def __init__(self, options):
        self.options = options
        self.killed = False
        self.stored = {}
        self.files = types.SimpleNamespace(write=self.stored.__setitem__)
        self.commands = types.SimpleNamespace(run=self._run)

    def _run(self, command, timeout=None):
        if self.fail_commands:
            raise TimeoutError("context deadline exceeded")
        # "cd DIR && python3 -I HARNESS < JOB": run what was uploaded, as the sandbox would.
        directory = Path(command.split()[1])
        harness, job = command.split("-I ")[1].split(" < ")
        with tempfile.TemporaryDirectory() as cwd:
            completed = run_harness(
                self.stored[f"{directory}/{harness}"], self.stored[f"{directory}/{job}"], cwd
            )
        if completed.returncode:
            raise CommandExitException(completed.stdout, completed.returncode)
        return types.SimpleNamespace(stdout=completed.stdout, stderr=completed.stderr, exit_code=0)

    def kill(self):
        with self.lock:
            self.killed = True
            FakeE2BSandbox.live -= 1


@pytest.fixture
def fake_e2b(monkeypatch):
    FakeE2BSandbox.reset()
    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", types.SimpleNamespace(Sandbox=FakeE2BSandbox))
    return FakeE2BSandbox


E2B_OPTIONS = {"api_key": "test-key", "backoff_s": 0.01, "max_concurrency": 2}


def test_e2b_grades_and_always_kills(fake_e2b, code_gt):
    ground_truth = code_gt(["1 2\n", "3 4\n"], ["3\n", "7\n"], public=2)
    assert verify_code(ADD, ground_truth, backend="e2b", backend_options=E2B_OPTIONS).acc
    wrong = verify_code(SUB, ground_truth, backend="e2b", backend_options=E2B_OPTIONS)
    assert wrong.reason == "wrong_answer" and "Your output:\n-1" in wrong.feedback
    assert fake_e2b.created and all(sandbox.killed for sandbox in fake_e2b.created)
    assert fake_e2b.created[0].options["allow_internet_access"] is False


def test_e2b_retries_rate_limits(fake_e2b, code_gt):
    fake_e2b.rate_limited_creates = 3
    assert verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="e2b", backend_options=E2B_OPTIONS).acc
    assert fake_e2b.rate_limited_creates == 0


def test_e2b_gives_up_after_retries(fake_e2b, code_gt):
    fake_e2b.rate_limited_creates = 100
    options = {**E2B_OPTIONS, "retries": 2}
    result = verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="e2b", backend_options=options)
    assert result.reason == "sandbox_error"


def test_e2b_kills_the_sandbox_when_the_run_fails(fake_e2b, code_gt):
    fake_e2b.fail_commands = True
    result = verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="e2b", backend_options=E2B_OPTIONS)
    assert result.reason == "sandbox_error"
    assert fake_e2b.created[0].killed


def test_e2b_respects_its_concurrency_limit(fake_e2b, code_gt):
    ground_truth = code_gt(["1 2\n"], ["3\n"])
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda _: verify_code(ADD, ground_truth, backend="e2b", backend_options=E2B_OPTIONS), range(6)
            )
        )
    assert all(result.acc for result in results)
    assert fake_e2b.max_live <= 2 and fake_e2b.live == 0


def test_e2b_sdk_without_network_switch_is_refused(fake_e2b, monkeypatch, code_gt):
    def old_create(**options):
        raise TypeError("create() got an unexpected keyword argument 'allow_internet_access'")

    monkeypatch.setattr(fake_e2b, "create", staticmethod(old_create))
    with pytest.raises(SandboxUnavailableError, match="sandbox options"):
        verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="e2b", backend_options=E2B_OPTIONS)


def test_e2b_needs_a_key(fake_e2b, monkeypatch, code_gt):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(SandboxUnavailableError, match="E2B_API_KEY"):
        compute_score(
            "code/x", ADD, code_gt(["1 2\n"], ["3\n"]), verifier_options={"code": {"backend": "e2b"}}
        )


class StubSandboxFusionServer:
    """A stand-in for SandboxFusion's POST /run_code: runs the submitted code on the stdin given."""

    def __init__(self, busy_replies=0, sandbox_error=False):
        self.requests = []
        self.busy_replies = busy_replies
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, payload))
                if stub.busy_replies:
                    stub.busy_replies -= 1
                    self.send_response(429)
                    self.end_headers()
                    return
                if sandbox_error:
                    body = {"status": "SandboxError", "message": "no executor available", "run_result": None}
                else:
                    with tempfile.TemporaryDirectory() as cwd:
                        completed = run_harness(payload["code"], payload["stdin"], cwd)
                    body = {
                        "status": "Success",
                        "run_result": {
                            "status": "Finished",
                            "stdout": completed.stdout,
                            "stderr": completed.stderr,
                            "return_code": completed.returncode,
                        },
                    }
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server():
    servers = []

    def start(**kwargs):
        servers.append(StubSandboxFusionServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_sandbox_fusion_runs_all_tests_in_one_request(stub_server, code_gt):
    server = stub_server()
    ground_truth = code_gt(["1 2\n", "3 4\n", "5 6\n"], ["3\n", "7\n", "11\n"])
    result = verify_code(ADD, ground_truth, backend="sandbox_fusion", backend_options={"url": server.url})
    assert result.acc and result.n_passed == 3
    path, payload = server.requests[0]
    assert len(server.requests) == 1 and path == "/run_code" and payload["language"] == "python"


def test_sandbox_fusion_call_based_and_wrong_answers(stub_server, code_gt):
    server = stub_server()
    options = {"backend": "sandbox_fusion", "backend_options": {"url": server.url + "/run_code"}}
    program = "```python\nclass Solution:\n    def f(self, s):\n        return s[::-1]\n```"
    assert verify_code(program, code_gt(['"abc"'], ['"cba"'], fn_name="f"), **options).acc
    assert (
        verify_code(program, code_gt(['"abc"'], ['"abc"'], fn_name="f"), **options).reason == "wrong_answer"
    )


def test_sandbox_fusion_retries_when_busy(stub_server, code_gt):
    server = stub_server(busy_replies=2)
    options = {"url": server.url, "backoff_s": 0.01}
    assert verify_code(
        ADD, code_gt(["1 2\n"], ["3\n"]), backend="sandbox_fusion", backend_options=options
    ).acc
    assert len(server.requests) == 3


def test_sandbox_fusion_errors_score_zero(stub_server, code_gt):
    server = stub_server(sandbox_error=True)
    result = verify_code(
        ADD, code_gt(["1 2\n"], ["3\n"]), backend="sandbox_fusion", backend_options={"url": server.url}
    )
    assert (result.score, result.reason) == (0.0, "sandbox_error")


def test_sandbox_fusion_unreachable(code_gt):
    options = {"url": "http://127.0.0.1:9", "retries": 1, "backoff_s": 0.01}
    result = verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="sandbox_fusion", backend_options=options)
    assert result.reason == "sandbox_error"


def test_sandbox_fusion_url_from_environment(stub_server, monkeypatch, code_gt):
    server = stub_server()
    monkeypatch.setenv("SANDBOX_FUSION_URL", server.url)
    assert verify_code(ADD, code_gt(["1 2\n"], ["3\n"]), backend="sandbox_fusion").acc
    monkeypatch.delenv("SANDBOX_FUSION_URL")
    with pytest.raises(SandboxUnavailableError):
        verify_code(
            ADD, code_gt(["1 2\n"], ["3\n"]), backend="sandbox_fusion", backend_options={"retries": 0}
        )
