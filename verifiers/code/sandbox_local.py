"""Local sandbox: the harness in a throwaway bubblewrap jail, as an unprivileged user.

Per run: fresh namespaces of every kind (no network: only a loopback-less net namespace), a
read-only view of /usr, /etc and the interpreter (the rest of the host filesystem, /home, /root and
the project included, is not there), a size-capped tmpfs as the only writable place and working
directory, a cleared environment, `--die-with-parent`, and uid 65534 when the caller is root
(RLIMIT_NPROC is not enforced for root). The harness adds rlimits (address space, CPU, file size,
open files, processes, no core dumps) and per-test timeouts; this side adds a hard deadline for
the whole run and kills the process tree at the end, so nothing outlives a run.

When bubblewrap cannot run here it falls back to `unshare` (root only: new PID/net/mount/IPC/UTS
namespaces, every mount made read-only in the private mount namespace, tmpfs over the usual
world-writable directories, a per-slot unprivileged uid; unlike bubblewrap, the rest of the host
filesystem stays readable wherever its permissions allow). Running without isolation at all needs
MOPD_ALLOW_UNSANDBOXED=1, and warns loudly.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass

from verifiers.code.protocol import HARNESS_SOURCE, HarnessJob, OutcomeCallback, ReportReader, RunReport
from verifiers.errors import SandboxUnavailableError, VerifierConfigError

logger = logging.getLogger(__name__)

ISOLATION_ENV = "MOPD_SANDBOX"  # force one of: bwrap, unshare, none
PYTHON_ENV = "MOPD_SANDBOX_PYTHON"  # interpreter run inside the sandbox
UNSANDBOXED_OPT_IN_ENV = "MOPD_ALLOW_UNSANDBOXED"
MECHANISMS = ("bwrap", "unshare", "none")
NOBODY = 65534
# `unshare` has no user namespace, so RLIMIT_NPROC counts a uid across the whole machine: give
# each concurrent run its own otherwise unused uid so runs cannot starve each other of processes.
UNSHARE_UID_BASE = 2_000_000_000
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
}
POLL_S = 0.05
PROBE_TIMEOUT_S = 60.0


def _is_root() -> bool:
    return os.geteuid() == 0


def _python_prefix(python: str) -> str | None:
    """The install tree to expose when the interpreter does not live under /usr."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return None
    return os.path.dirname(os.path.dirname(real))


def _bwrap_command(python: str, tmpfs_bytes: int) -> list[str]:
    # A user namespace is required (not just tried) and closed to the program, so it cannot nest one.
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
    argv += ["--die-with-parent", "--new-session", "--clearenv"]
    for key, value in SANDBOX_ENV.items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):  # merged-/usr distributions
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    prefix = _python_prefix(python)
    if prefix:
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(tmpfs_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp", "--remount-ro", "/"]
    return [*argv, python, "-I", "-B", "-c", HARNESS_SOURCE]


def _unshare_command(python: str, tmpfs_bytes: int) -> list[str]:
    # Runs as root inside fresh namespaces just long enough to make its private copy of every mount
    # read-only and to put private tmpfs over the world-writable directories; the harness then drops
    # to an unprivileged uid before any test runs.
    script = (
        'while read -r _ point _; do mount -o remount,bind,ro "$point" 2>/dev/null; done < /proc/self/mounts; '
        "for d in /tmp /var/tmp /dev/shm /run/lock; do "
        f'[ -d "$d" ] && mount -t tmpfs -o size={tmpfs_bytes},mode=1777 tmpfs "$d"; done; '
        'cd /tmp && exec "$0" -I -B -c "$1"'
    )
    return [
        "unshare", "--fork", "--pid", "--mount-proc", "--net", "--ipc", "--uts", "--mount", "--kill-child",
        "--", "/bin/sh", "-c", script, python, HARNESS_SOURCE,
    ]  # fmt: skip


@dataclass(frozen=True)
class Isolation:
    mechanism: str
    python: str

    @property
    def private_pid_namespace(self) -> bool:
        return self.mechanism != "none"


class LocalSandbox:
    """Runs harness jobs on this machine, at most `max_concurrency` at a time."""

    name = "local"

    def __init__(
        self,
        max_concurrency: int | None = None,
        isolation: str | None = None,
        python: str | None = None,
        tmpfs_mb: int = 64,
    ) -> None:
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.requested_isolation = isolation or os.environ.get(ISOLATION_ENV) or None
        if self.requested_isolation not in (None, *MECHANISMS):
            raise VerifierConfigError(
                f"unknown sandbox isolation {self.requested_isolation!r}; use one of {MECHANISMS}"
            )
        self.requested_python = python or os.environ.get(PYTHON_ENV) or None
        self.tmpfs_bytes = tmpfs_mb << 20
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.max_concurrency):
            self._slots.put(slot)
        self._isolation: Isolation | None = None
        self._isolation_lock = threading.Lock()

    @property
    def isolation(self) -> Isolation:
        """The mechanism in use, chosen by probing on first use."""
        with self._isolation_lock:
            if self._isolation is None:
                self._isolation = self._choose_isolation()
            return self._isolation

    def run(
        self, job: HarnessJob, on_outcome: OutcomeCallback, cancel: threading.Event | None = None
    ) -> RunReport:
        isolation = self.isolation
        slot = self._slots.get()
        try:
            return self._run(isolation, slot, job, on_outcome, cancel)
        finally:
            self._slots.put(slot)

    def _run(
        self,
        isolation: Isolation,
        slot: int,
        job: HarnessJob,
        on_outcome: OutcomeCallback,
        cancel: threading.Event | None,
    ) -> RunReport:
        popen_kwargs: dict = {}
        workdir = None
        job_overrides: dict = {"sweep": isolation.private_pid_namespace}
        if isolation.mechanism == "bwrap":
            argv = _bwrap_command(isolation.python, self.tmpfs_bytes)
            if _is_root():
                popen_kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        elif isolation.mechanism == "unshare":
            argv = _unshare_command(isolation.python, self.tmpfs_bytes)
            job_overrides["drop_to"] = [UNSHARE_UID_BASE + slot, UNSHARE_UID_BASE + slot]
        else:
            argv = [isolation.python, "-I", "-B", "-c", HARNESS_SOURCE]
            workdir = tempfile.mkdtemp(prefix="mopd-unsandboxed-")
            popen_kwargs["cwd"] = workdir
            if _is_root():
                os.chown(workdir, NOBODY, NOBODY)
                popen_kwargs.update(user=NOBODY, group=NOBODY, extra_groups=[])
        try:
            return _drive(
                argv, popen_kwargs, job.to_json(**job_overrides), job, ReportReader(on_outcome), cancel
            )
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)

    def _choose_isolation(self) -> Isolation:
        pythons = _python_candidates(self.requested_python)
        mechanisms = [self.requested_isolation] if self.requested_isolation else ["bwrap", "unshare"]
        failures = []
        for mechanism in mechanisms:
            if mechanism == "none":
                break
            for python in pythons:
                problem = self._probe(Isolation(mechanism, python))
                if problem is None:
                    logger.info("code sandbox: %s with %s", mechanism, python)
                    return Isolation(mechanism, python)
                failures.append(f"{mechanism} with {python}: {problem}")
        if os.environ.get(UNSANDBOXED_OPT_IN_ENV) == "1":
            message = (
                "RUNNING MODEL-GENERATED CODE WITHOUT A SANDBOX (MOPD_ALLOW_UNSANDBOXED=1): it can read your files, "
                "reach the network and signal your processes. " + "; ".join(failures)
            )
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return Isolation("none", pythons[0])
        raise SandboxUnavailableError(
            "no code sandbox works on this machine ("
            + ("; ".join(failures) or "none was allowed")
            + "). Install bubblewrap (apt-get install bubblewrap) and allow user namespaces, run as root for the "
            f"unshare fallback, use backend='e2b' or 'sandbox_fusion', or set {UNSANDBOXED_OPT_IN_ENV}=1 to run "
            "untrusted code unisolated at your own risk."
        )

    def _probe(self, isolation: Isolation) -> str | None:
        if shutil.which(isolation.mechanism) is None:
            return f"{isolation.mechanism} is not installed"
        if isolation.mechanism == "unshare" and not _is_root():
            return "the unshare fallback needs root"
        job = HarnessJob(
            code="print(input()[::-1])",
            fn_name=None,
            inputs=["ok"],
            first_index=0,
            timeout=PROBE_TIMEOUT_S,
            memory_bytes=512 << 20,
            output_bytes=1 << 10,
        )
        outcomes = []
        report = self._run(isolation, 0, job, lambda outcome: outcomes.append(outcome) or True, None)
        if outcomes and outcomes[0].status == "ok" and outcomes[0].stdout.strip() == "ko":
            return None
        return report.error or (outcomes[0].stderr.strip()[-300:] if outcomes else "no result")


def _python_candidates(requested: str | None) -> list[str]:
    """A system interpreter first: one under /root or a venv may be unreadable by uid 65534."""
    if requested:
        return [requested]
    candidates = ["/usr/bin/python3", "/usr/local/bin/python3", os.path.realpath(sys.executable)]
    return [
        path
        for index, path in enumerate(candidates)
        if os.path.exists(path) and path not in candidates[:index]
    ]


def _drive(
    argv: list[str],
    popen_kwargs: dict,
    job_bytes: bytes,
    job: HarnessJob,
    reader: ReportReader,
    cancel: threading.Event | None,
) -> RunReport:
    """Feed the job, stream report lines to `reader`, enforce the deadline; always kill the tree."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=HOST_ENV,  # bwrap's own /proc/<pid>/environ must not carry the trainer's secrets
            start_new_session=True,
            close_fds=True,
            **{"cwd": "/", **popen_kwargs},
        )
    except OSError as error:
        return reader.finish(f"could not start the sandbox: {error}")
    assert process.stdin and process.stdout and process.stderr
    max_line_bytes = 2 * job.output_bytes + (1 << 20)  # JSON escaping can double the output
    deadline = time.monotonic() + job.deadline_s
    pending = memoryview(job_bytes)
    line_buffer, stderr_tail = bytearray(), bytearray()
    failure: str | None = None
    stdout_closed = False
    os.set_blocking(process.stdin.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(process.stdin, selectors.EVENT_WRITE)
    selector.register(process.stdout, selectors.EVENT_READ)
    selector.register(process.stderr, selectors.EVENT_READ)
    try:
        wanted = True
        while wanted and not stdout_closed:
            if cancel is not None and cancel.is_set():
                reader.stopped = True
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"the sandbox exceeded its {job.deadline_s:.0f} s deadline"
                break
            for key, _ in selector.select(min(remaining, POLL_S)):
                if key.fileobj is process.stdin:
                    try:
                        written = os.write(process.stdin.fileno(), pending[: 1 << 16])
                    except (BrokenPipeError, BlockingIOError) as error:
                        written = len(pending) if isinstance(error, BrokenPipeError) else 0
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(process.stdin)
                        process.stdin.close()
                    continue
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if key.fileobj is process.stderr:
                    if not chunk:
                        selector.unregister(process.stderr)
                    stderr_tail = (stderr_tail + chunk)[-4096:]
                    continue
                if not chunk:
                    stdout_closed = True
                    break
                line_buffer += chunk
                while wanted and b"\n" in line_buffer:
                    line, _, rest = bytes(line_buffer).partition(b"\n")
                    line_buffer = bytearray(rest)
                    wanted = reader.feed_line(line)
                if len(line_buffer) > max_line_bytes:
                    failure = "the sandbox harness wrote an oversized report line"
                    wanted = False
    finally:
        selector.close()
        _kill_tree(process)
    if stdout_closed and failure is None:
        detail = stderr_tail.decode("utf-8", errors="replace").strip()[-500:]
        failure = f"the sandbox exited with code {process.returncode} before finishing" + (
            f": {detail}" if detail else ""
        )
    return reader.finish(failure)


def _kill_tree(process: subprocess.Popen) -> None:
    """Kill the sandbox's inner processes first so the jail's own launcher reaps them, then it."""
    for child in _children(process.pid):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
    try:
        process.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []
