"""Test runner that executes *inside* a sandbox (local namespace jail, E2B, or SandboxFusion).

Standard library only, and no imports from this package: its source is shipped verbatim to the
sandbox and run as `python -I -c <source>` or `python harness.py`, with the job as JSON on stdin.

One harness process runs all tests of one program, so the sandbox start-up cost is paid once. Each
test runs in a forked child with its own rlimits, stdin, and capped stdout/stderr pipes; the harness
enforces the per-test wall-clock timeout and kills the child (and, inside a private PID namespace,
every other leftover process) after each test.

It reports one JSON line per test on stdout: `{"index", "status", "stdout", "result", "stderr",
"time", "exit"}` with status one of ok / runtime_error / timeout / output_limit / memory_limit, a
`{"compile_error": message}` line instead when the program does not parse, and `{"done": true}` at
the end. Expected outputs are never sent here, so nothing the program prints or forges can make it
pass: the caller compares outside.
"""

import builtins
import json
import math
import os
import resource
import selectors
import signal
import sys
import tempfile
import threading
import time
import traceback
import types

# LiveCodeBench's `import_string`: programs (LeetCode ones especially) rely on these names
# being present without importing them, e.g. `List[int]` in a signature.
PREAMBLE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n"
)
PREAMBLE_CODE = compile(PREAMBLE, "<preamble>", "exec")
STDERR_TAIL_BYTES = 4096
POLL_S = 0.05
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38


def emit(event):
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def prctl(option, value):
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux/glibc: the namespaces and rlimits still hold


def tasks_of_own_uid():
    """Processes and threads already charged to our uid: RLIMIT_NPROC counts them all."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def set_limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        # Cannot raise a hard limit the sandbox already lowered: keep the lower one.
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY and value > hard:
            resource.setrlimit(kind, (hard, hard))


def virtual_memory_bytes():
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


def harden(job):
    if job.get("drop_to"):
        uid, gid = job["drop_to"]
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries cannot give the program its privileges back
    # Same-uid test processes must not ptrace us or open /proc/<harness>/fd/1 to forge report lines.
    prctl(PR_SET_DUMPABLE, 0)
    set_limit(resource.RLIMIT_CORE, 0)
    # A budget on top of what the uid already runs (in E2B or unsandboxed mode that is not zero).
    set_limit(resource.RLIMIT_NPROC, tasks_of_own_uid() + job["max_processes"])
    set_limit(resource.RLIMIT_FSIZE, job["file_size_bytes"])


def stdin_fd(data):
    """A seekable fd holding the test input: the child reads it at its own pace, no writer needed."""
    try:
        fd = os.memfd_create("stdin")
    except (AttributeError, OSError):
        fd = os.dup(tempfile.TemporaryFile().fileno())
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_child(job, code, test_input, pipes, input_fd):
    """In the forked child: become the program. Never returns."""
    exit_code = 1
    try:
        os.setpgid(0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.dup2(input_fd, 0)
        os.dup2(pipes["stdout"][1], 1)
        os.dup2(pipes["stderr"][1], 2)
        os.dup2(pipes["result"][1], 3)
        close_inherited_fds()
        cpu_seconds = math.ceil(job["timeout"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        # The fork inherits the harness's memory (all test inputs): budget on top of it.
        set_limit(resource.RLIMIT_AS, virtual_memory_bytes() + job["memory_bytes"])
        set_limit(resource.RLIMIT_NOFILE, job["max_open_files"])
        sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
        sys.argv = ["solution.py"]
        if hasattr(sys, "set_int_max_str_digits"):
            sys.set_int_max_str_digits(50000)  # as LiveCodeBench: big-integer answers must print
        module = types.ModuleType("__main__")
        module.__file__ = "solution.py"
        module.__builtins__ = builtins
        sys.modules["__main__"] = module
        exec(PREAMBLE_CODE, module.__dict__)
        try:
            exec(code, module.__dict__)
            if job["fn_name"] is not None:
                call_function(job, module, test_input)
            for thread in threading.enumerate():
                if thread is not threading.main_thread() and not thread.daemon:
                    thread.join()
        except SystemExit:
            pass  # like LiveCodeBench: exit() ends the program, the output is still graded
        exit_code = 0
    except BaseException as error:
        print_program_error(error)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(exit_code)


def close_inherited_fds():
    # Listing our own fds beats closerange over the whole fd table (thousands of syscalls per test).
    for entry in os.listdir("/proc/self/fd"):
        if int(entry) > 3:
            try:
                os.close(int(entry))
            except OSError:
                pass


def print_program_error(error):
    """The traceback from the program's own frames on, without the harness's."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "solution.py":
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)
    sys.stderr.flush()


def call_function(job, module, test_input):
    target = module.Solution() if "class Solution" in job["code"] and hasattr(module, "Solution") else module
    function = getattr(target, job["fn_name"], None)
    if function is None:
        raise NameError(f"the program defines no function or Solution method named {job['fn_name']!r}")
    arguments = [json.loads(line) for line in test_input.split("\n") if line.strip()]
    value = function(*arguments)
    try:
        payload = json.dumps({"value": value})  # tuples become lists, as LiveCodeBench grades them
    except (TypeError, ValueError):
        payload = json.dumps({"unserializable": type(value).__name__})
    with open(3, "w", encoding="utf-8", closefd=False) as result:
        result.write(payload)


class MemoryWatch:
    """Total resident memory of the test's processes. RLIMIT_AS bounds each process, not a program
    that forks many; inside a private PID namespace every other process is the test's, so their sum
    is checked every POLL_S. Outside one (E2B, SandboxFusion) only the per-process limit applies."""

    def __init__(self, limit_bytes):
        self.limit_bytes = limit_bytes
        self.next_check = 0.0

    def exceeded(self):
        now = time.monotonic()
        if self.limit_bytes is None or now < self.next_check:
            return False
        self.next_check = now + POLL_S
        own, resident_pages = os.getpid(), 0
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in (1, own):
                try:
                    with open(f"/proc/{entry}/statm") as statm:
                        resident_pages += int(statm.read().split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        return resident_pages * resource.getpagesize() > self.limit_bytes


def collect(pid, pipes, deadline, output_limit, memory):
    """Read the child's pipes until they close: (buffers, why it was killed or None, exit status or None)."""
    buffers = {name: bytearray() for name in pipes}
    with selectors.DefaultSelector() as selector:
        for name, (read_end, _) in pipes.items():
            selector.register(read_end, selectors.EVENT_READ, name)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return buffers, "timeout", None
            if memory.exceeded():
                return buffers, "memory_limit", None
            events = selector.select(min(remaining, POLL_S))
            if not events:
                reaped, status = os.waitpid(pid, os.WNOHANG)
                if reaped:  # exited, but a background grandchild still holds the pipes open
                    return buffers, None, status
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = buffers[key.data]
                buffer += chunk
                if key.data == "stderr" and len(buffer) > STDERR_TAIL_BYTES:
                    del buffer[: len(buffer) - STDERR_TAIL_BYTES]
                elif len(buffer) > output_limit:
                    return buffers, "output_limit", None
    return buffers, None, None


def wait_child(pid, deadline, memory):
    """The child's exit status; None if it outlives the deadline ("timeout") or the memory budget."""
    while time.monotonic() < deadline and not memory.exceeded():
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return status
        time.sleep(0.002)
    return None


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def sweep_namespace():
    """Kill everything else in our private PID namespace: background processes from the last test."""
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (1, own):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    reap_all()


def reap_all():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def run_test(job, code, index, test_input):
    pipes = {name: os.pipe() for name in ("stdout", "stderr", "result")}
    input_fd = stdin_fd(test_input.encode("utf-8") if job["fn_name"] is None else b"")
    started = time.monotonic()
    try:
        pid = os.fork()
    except OSError as error:  # e.g. the process limit, still held by the previous test's leftovers
        pid = None
        failure = f"could not start the test process: {error}"
    if pid == 0:
        run_child(job, code, test_input, pipes, input_fd)
    os.close(input_fd)
    for _, write_end in pipes.values():
        os.close(write_end)
    if pid is None:
        for read_end, _ in pipes.values():
            os.close(read_end)
        empty = {name: bytearray() for name in pipes}
        empty["stderr"] += failure.encode()
        return outcome(index, empty, None, None, 0.0)
    memory = MemoryWatch(job["memory_bytes"] if job["sweep"] else None)
    buffers, killed_for, status = collect(pid, pipes, started + job["timeout"], job["output_bytes"], memory)
    if killed_for:
        kill_group(pid)
    if status is None:
        # Pipes closed (or the child was killed): reap it, killing it if it lingers past the limits.
        status = wait_child(pid, max(started + job["timeout"], time.monotonic() + 0.1), memory)
        if status is None:
            if not killed_for:
                killed_for = "timeout" if time.monotonic() >= started + job["timeout"] else "memory_limit"
            kill_group(pid)
            status = os.waitpid(pid, 0)[1]
    elapsed = time.monotonic() - started
    kill_group(pid)  # grandchildren left in the test's process group
    for read_end, _ in pipes.values():
        os.close(read_end)
    return outcome(index, buffers, killed_for, status, elapsed)


def outcome(index, buffers, killed_for, status, elapsed):
    exit_code = None
    if status is not None and os.WIFEXITED(status):
        exit_code = os.WEXITSTATUS(status)
    elif status is not None and os.WIFSIGNALED(status):
        exit_code = -os.WTERMSIG(status)
    if killed_for:
        verdict = killed_for
    elif exit_code == -signal.SIGXCPU:
        verdict = "timeout"
    elif exit_code == 0:
        verdict = "ok"
    else:
        verdict = "runtime_error"
    return {
        "index": index,
        "status": verdict,
        "stdout": bytes(buffers["stdout"]).decode("utf-8", errors="replace"),
        "result": bytes(buffers["result"]).decode("utf-8", errors="replace"),
        "stderr": bytes(buffers["stderr"]).decode("utf-8", errors="replace"),
        "time": round(elapsed, 4),
        "exit": exit_code,
    }


def main():
    job = json.loads(sys.stdin.buffer.read())
    harden(job)
    try:
        code = compile(job["code"], "solution.py", "exec")
    except (SyntaxError, ValueError) as error:
        emit({"compile_error": "".join(traceback.format_exception_only(type(error), error)).strip()})
        return
    # Warm the modules every child imports, so each fork starts with them loaded.
    exec(PREAMBLE_CODE, {})
    for offset, test_input in enumerate(job["inputs"]):
        result = run_test(job, code, job["first_index"] + offset, test_input)
        if job["sweep"]:
            sweep_namespace()
        else:
            reap_all()
        emit(result)
        if job["stop_on_error"] and result["status"] != "ok":
            break
    emit({"done": True})


if __name__ == "__main__":
    main()
