"""The fallbacks of the local sandbox: `unshare` (root, no bubblewrap) and the explicit opt-in to no
isolation at all."""

import os
import shutil
import tempfile
import uuid

import pytest

from verifiers.code.protocol import HarnessJob
from verifiers.code.sandbox_local import UNSANDBOXED_OPT_IN_ENV, LocalSandbox
from verifiers.errors import SandboxUnavailableError


def run_program(sandbox: LocalSandbox, code: str, time_limit: float = 2):
    job = HarnessJob(
        code=code,
        fn_name=None,
        inputs=[""],
        first_index=0,
        timeout=time_limit,
        memory_bytes=512 << 20,
        output_bytes=1 << 20,
    )
    outcomes = []
    report = sandbox.run(job, lambda outcome: outcomes.append(outcome) or True)
    return report, outcomes


@pytest.fixture
def unshare_sandbox(monkeypatch):
    monkeypatch.delenv(UNSANDBOXED_OPT_IN_ENV, raising=False)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("the unshare fallback needs root and util-linux unshare")
    sandbox = LocalSandbox(max_concurrency=2, isolation="unshare")
    try:
        assert sandbox.isolation.mechanism == "unshare"
    except SandboxUnavailableError as error:
        pytest.skip(f"unshare does not work here: {error}")
    return sandbox


@pytest.mark.usefixtures("no_leftover_processes")
def test_unshare_runs_programs(unshare_sandbox):
    _, outcomes = run_program(unshare_sandbox, "import os\nprint('uid', os.getuid())")
    assert outcomes[0].status == "ok" and outcomes[0].stdout.split() != ["uid", "0"]


@pytest.mark.usefixtures("no_leftover_processes")
def test_unshare_contains_hostile_programs(unshare_sandbox, monkeypatch, processes_with_marker):
    secret, marker = f"secret-{uuid.uuid4().hex}", f"marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("HF_TOKEN", secret)
    open_dir = tempfile.mkdtemp(dir="/var/lib")  # outside every tmpfs the fallback mounts
    os.chmod(open_dir, 0o777)
    try:
        program = f"""
import os, socket, subprocess, sys
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("network")
except OSError:
    pass
try:
    open({open_dir!r} + "/pwned", "w").write("x")
    print("wrote")
except OSError:
    pass
if {secret!r} in str(os.environ):
    print("secret")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {marker!r}], start_new_session=True)
count = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            import time; time.sleep(30); os._exit(0)
        count += 1
except OSError:
    pass
print("forked", count)
"""
        _, outcomes = run_program(unshare_sandbox, program)
        printed = outcomes[0].stdout.split()
        assert printed[0] == "forked" and int(printed[1]) < 64, outcomes[0]
        assert not os.path.exists(os.path.join(open_dir, "pwned"))
        assert processes_with_marker(marker) == []
    finally:
        shutil.rmtree(open_dir)


def test_no_isolation_needs_an_explicit_opt_in(monkeypatch):
    monkeypatch.delenv(UNSANDBOXED_OPT_IN_ENV, raising=False)
    with pytest.raises(SandboxUnavailableError, match=UNSANDBOXED_OPT_IN_ENV):
        assert LocalSandbox(isolation="none").isolation


@pytest.mark.usefixtures("no_leftover_processes")
def test_opted_in_no_isolation_warns_loudly_and_runs(monkeypatch):
    monkeypatch.setenv(UNSANDBOXED_OPT_IN_ENV, "1")
    sandbox = LocalSandbox(isolation="none")
    with pytest.warns(RuntimeWarning, match="WITHOUT A SANDBOX"):
        assert sandbox.isolation.mechanism == "none"
    _, outcomes = run_program(sandbox, "print(sum(range(10)))")
    assert outcomes[0].status == "ok" and outcomes[0].stdout == "45\n"


def test_unknown_isolation_is_a_config_error():
    with pytest.raises(ValueError, match="unknown sandbox isolation"):
        LocalSandbox(isolation="docker")
