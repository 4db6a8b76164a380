"""Hostile programs against the local sandbox.

Each program's expected output is what it would print if the attack worked, so a sandbox that let
it through would score 1. Every test also checks that the verdict comes within its deadline and
(through `no_leftover_processes`) that no sandbox process survives the run.
"""

import os
import socket
import textwrap
import time
import uuid

import pytest

from verifiers.code.verifier import verify_code

pytestmark = pytest.mark.usefixtures("local_sandbox", "no_leftover_processes")

# Start-up, the per-test limit, and slack for a loaded 2-core CI machine.
DEADLINE_SLACK_S = 10


def run(fenced, code_gt, program, expected="", time_limit=2, **options):
    started = time.monotonic()
    result = verify_code(
        fenced(textwrap.dedent(program)),
        code_gt(["\n"], [expected], public=1, time_limit=time_limit),
        **options,
    )
    return result, time.monotonic() - started


def test_fork_bomb(fenced, code_gt):
    result, elapsed = run(
        fenced,
        code_gt,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        expected="survived",
    )
    assert result.score == 0.0 and result.reason in ("timeout", "runtime_error")
    assert elapsed < 2 + DEADLINE_SLACK_S
    assert os.fork is not None  # the host can still start processes (this test process got here)


def test_process_limit_is_enforced(fenced, code_gt):
    result, _ = run(
        fenced,
        code_gt,
        """
        import os, time
        count = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                count += 1
        except OSError:
            pass
        print("forked", count)
        """,
        expected="forked 500",
    )
    assert result.reason == "wrong_answer"
    forked = int(result.feedback.split("Your output:\nforked ")[1].split()[0])
    assert forked < 64


def test_memory_bomb(fenced, code_gt):
    result, elapsed = run(
        fenced,
        code_gt,
        """
        blocks = []
        while True:
            blocks.append(bytearray(50 << 20))
        """,
        memory_mb=256,
    )
    # Either the process's own address-space limit or the sandbox's total-memory watch stops it first.
    assert (result.reason, "MemoryError" in result.feedback) in [
        ("runtime_error", True),
        ("memory_limit", False),
    ]
    assert elapsed < 2 + DEADLINE_SLACK_S


def test_memory_bomb_across_processes(fenced, code_gt):
    # Each process stays under its own address-space limit; together they would not.
    result, elapsed = run(
        fenced,
        code_gt,
        """
        import os, time
        for _ in range(12):
            if os.fork() == 0:
                break
        block = bytearray(150 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(30)
        """,
        memory_mb=256,
        time_limit=10,
    )
    assert result.reason == "memory_limit" and "memory" in result.feedback
    assert elapsed < 10


def test_infinite_loop(fenced, code_gt):
    result, elapsed = run(fenced, code_gt, "while True:\n    pass", expected="done", time_limit=1)
    assert result.reason == "timeout"
    assert elapsed < 1 + DEADLINE_SLACK_S


def test_sleeping_program_hits_the_wall_clock_limit(fenced, code_gt):
    result, elapsed = run(fenced, code_gt, "import time\ntime.sleep(60)", expected="done", time_limit=1)
    assert result.reason == "timeout"
    assert elapsed < 1 + DEADLINE_SLACK_S


def test_output_flood(fenced, code_gt):
    result, elapsed = run(
        fenced, code_gt, 'while True:\n    print("x" * 10000)', expected="x", output_limit_mb=1
    )
    assert result.reason == "output_limit"
    assert elapsed < 2 + DEADLINE_SLACK_S


def test_disk_flood_stays_in_the_capped_tmpfs(fenced, code_gt):
    result, _ = run(
        fenced,
        code_gt,
        """
        written = 0
        try:
            with open("big.bin", "wb") as big:
                while written < 4 << 30:
                    big.write(b"x" * (1 << 20))
                    written += 1 << 20
        except OSError as error:
            print("stopped", type(error).__name__)
        else:
            print("wrote 4 GiB")
        """,
        expected="wrote 4 GiB",
    )
    assert result.reason == "wrong_answer" and "stopped" in result.feedback


def test_no_network(fenced, code_gt):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result, _ = run(
            fenced,
            code_gt,
            f"""
            import socket
            reached = []
            for host, port in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("pypi.org", 443)]:
                try:
                    socket.create_connection((host, port), timeout=2).close()
                    reached.append(host)
                except OSError:
                    pass
            print("reached", reached)
            """,
            expected="reached ['127.0.0.1', '1.1.1.1', 'pypi.org']",
        )
        assert result.reason == "wrong_answer" and "Your output:\nreached []" in result.feedback
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_cannot_write_outside_its_directory(fenced, code_gt, tmp_path):
    open_dir = tmp_path / "world-writable"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    targets = [
        open_dir / "pwned",
        "/root/pwned",
        "/etc/pwned",
        "/usr/pwned",
        os.path.join(os.getcwd(), "pwned"),
    ]
    result, _ = run(
        fenced,
        code_gt,
        f"""
        wrote = []
        for path in {[str(target) for target in targets]!r}:
            try:
                with open(path, "w") as handle:
                    handle.write("x")
                wrote.append(path)
            except OSError:
                pass
        print("wrote", len(wrote))
        """,
        expected=f"wrote {len(targets)}",
    )
    assert "Your output:\nwrote 0" in result.feedback
    assert not any(os.path.exists(target) for target in targets)


def test_cannot_read_the_parents_environment(fenced, code_gt, monkeypatch):
    secret = f"sk-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("E2B_API_KEY", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    result, _ = run(
        fenced,
        code_gt,
        f"""
        import os
        found = any({secret!r} in value for value in os.environ.values())
        for pid in [entry for entry in os.listdir("/proc") if entry.isdigit()] + ["{os.getpid()}"]:
            try:
                with open(f"/proc/{{pid}}/environ", "rb") as environ:
                    found = found or {secret!r}.encode() in environ.read()
            except OSError:
                pass
        print("found" if found else "not found", sorted(os.environ))
        """,
        expected="found",
    )
    assert result.reason == "wrong_answer" and "Your output:\nnot found" in result.feedback
    assert secret not in result.feedback and "E2B_API_KEY" not in result.feedback


def test_cannot_see_the_project_or_home(fenced, code_gt):
    result, _ = run(
        fenced,
        code_gt,
        f"""
        import os
        print([path for path in ({os.getcwd()!r}, "/root", "/home", "/work") if os.path.exists(path) and os.listdir(path)])
        """,
        expected="['x']",
    )
    assert "Your output:\n[]" in result.feedback


def test_killing_the_parent(fenced, code_gt, local_sandbox):
    result, elapsed = run(
        fenced,
        code_gt,
        f"""
        import os, signal
        for target in (os.getppid(), {os.getpid()}, 1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        os.kill(-1, signal.SIGKILL)
        """,
        expected="",
    )
    assert result.score == 0.0 and result.reason == "sandbox_error"
    assert elapsed < 2 + DEADLINE_SLACK_S
    # The sandbox still works for the next program.
    assert run(fenced, code_gt, "print('ok')", expected="ok")[0].acc


def test_background_processes_do_not_survive(fenced, code_gt, processes_with_marker):
    marker = f"mopd-marker-{uuid.uuid4().hex}"
    # The program exits at once; its detached helpers would finish the output later, and linger.
    late_print = f"import time; time.sleep(1); print('done', flush=True); time.sleep(300)  # {marker}"
    result, elapsed = run(
        fenced,
        code_gt,
        f"""
        import os, subprocess, sys
        print("started", flush=True)
        subprocess.Popen([sys.executable, "-c", {late_print!r}], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", {marker!r}])
            os._exit(0)
        """,
        expected="started\ndone",
        time_limit=5,
    )
    assert result.reason == "wrong_answer" and "Your output:\nstarted" in result.feedback
    assert elapsed < 5
    assert processes_with_marker(marker) == []


def test_background_process_holding_the_output_pipe(fenced, code_gt):
    # The child exits but a grandchild keeps stdout open: the test must still end promptly.
    result, elapsed = run(
        fenced,
        code_gt,
        """
        import os, time
        print("ok", flush=True)
        if os.fork() == 0:
            time.sleep(300)
        """,
        expected="ok",
        time_limit=5,
    )
    assert result.acc and elapsed < 5
