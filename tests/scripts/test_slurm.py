"""scripts/slurm/mopd.sbatch run with bash on CPU against fake `scontrol`, `srun`, `ray`, `hostname`, `ip`
and driver `python3` (tests/scripts/fake_slurm/): the fakes log what they are asked to do, and the tests
check the sequence, the driver's final command, and that Ray is stopped on every node however the job ends.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "scripts/slurm/mopd.sbatch"
FAKES = Path(__file__).resolve().parent / "fake_slurm"
NODES = ["node1", "node2", "node3"]


@dataclass
class Job:
    returncode: int
    stderr: str
    log: list[str]

    def index(self, pattern: str, start: int = 0) -> int:
        """Position of the first log line at or after `start` that matches `pattern`."""
        for position in range(start, len(self.log)):
            if re.search(pattern, self.log[position]):
                return position
        raise AssertionError(f"no log line matches {pattern!r} after line {start}:\n" + "\n".join(self.log))

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.log if re.search(pattern, line)]

    def driver_argv(self) -> list[str]:
        (line,) = self.lines(r"^python3@")
        return shlex.split(line.split(" ARGV ", 1)[1])


@pytest.fixture
def sbatch(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for fake in FAKES.iterdir():
        shutil.copy(fake, bin_dir / fake.name)
        (bin_dir / fake.name).chmod(0o755)
    log = tmp_path / "log"
    base_env = {
        "HOME": str(tmp_path),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(state),
        "FAKE_NODES": " ".join(NODES),
        "SLURM_JOB_NODELIST": "node[1-3]",
        "SLURM_SUBMIT_DIR": str(REPO),
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_CPUS_PER_TASK": "32",
        "POLL_INTERVAL": "0.02",
        "JOIN_TIMEOUT": "20",
    }

    def start(*args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", str(SBATCH), *args],
            env={**base_env, **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(process: subprocess.Popen) -> Job:
        _, stderr = process.communicate(timeout=60)
        return Job(process.returncode, stderr, log.read_text().splitlines() if log.exists() else [])

    def run(*args: str, **env: str) -> Job:
        return finish(start(*args, **env))

    run.start, run.finish, run.log = start, finish, log
    return run


def assert_ray_stopped_everywhere(job: Job, after: int = 0) -> None:
    stopped = [re.search(r"-w (\S+) --overlap ray stop", line) for line in job.log[after:]]
    assert sorted(match.group(1) for match in stopped if match) == NODES


def test_cluster_comes_up_then_driver_runs_on_the_head_then_ray_stops(sbatch, trainer_config):
    job = sbatch("trainer.total_training_steps=3", DOMAIN="math", MODEL="qwen3_8b")
    assert job.returncode == 0, job.stderr

    discover = job.index(r"^srun --nodes=1 --ntasks=1 -w node1 hostname --ip-address$")
    head = job.index(
        r"^srun --nodes=1 --ntasks=1 -w node1 --cpus-per-task=32 ray start --head "
        r"--node-ip-address=10\.9\.0\.1 --port=6379 --num-gpus=8 --num-cpus=32 --block$",
        discover,
    )
    workers = [
        job.index(rf"^srun .* -w {node} .*ray start --address=10\.9\.0\.1:6379 --num-gpus=8", head)
        for node in NODES[1:]
    ]
    driver = job.index(
        r"^srun --nodes=1 --ntasks=1 -w node1 --overlap bash \S+/scripts/run_mopd\.sh", max(workers)
    )
    # The fake reveals one more node every second poll: the head at poll 2, all three at poll 6.
    polls = [position for position, line in enumerate(job.log) if line.startswith("ray@batch list nodes")]
    assert len([p for p in polls if p < min(workers)]) >= 2, "workers start only once the head answers"
    assert len([p for p in polls if p < driver]) >= 6, "the driver starts only once every node joined"
    assert job.index(r"^python3@node1 RAY_ADDRESS=10\.9\.0\.1:6379 ") > driver
    assert_ray_stopped_everywhere(job, after=driver)

    argv = job.driver_argv()
    assert argv[-1] == "trainer.total_training_steps=3"
    config = trainer_config(argv[2:])
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (3, 8)
    assert config.mopd.teacher == "ema" and config.distillation.nnodes == 0
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen3-8B"


def test_frozen_teacher_nodes_are_taken_out_of_the_trainer(sbatch, trainer_config):
    job = sbatch(METHOD="sdpo", TEACHER="frozen", TEACHER_NODES="1", TEACHER_MODEL_PATH="Qwen/Qwen3-8B")
    assert job.returncode == 0, job.stderr
    assert job.lines(r"--overlap bash \S+/scripts/run_sdpo\.sh$")
    config = trainer_config(job.driver_argv()[2:])
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (2, 8)
    assert (config.distillation.nnodes, config.distillation.n_gpus_per_node) == (1, 8)
    assert config.distillation.teacher_models.teacher_model.model_path == "Qwen/Qwen3-8B"
    assert (config.mopd.teacher, config.mopd.mode, config.mopd.num_success) == ("frozen", "positive", 1)


def test_driver_failure_still_stops_ray_on_every_node(sbatch):
    job = sbatch(FAKE_DRIVER_RC="3")
    assert job.returncode == 3
    assert_ray_stopped_everywhere(job, after=job.index(r"^python3@"))


def test_termination_stops_the_driver_and_ray(sbatch):
    process = sbatch.start(FAKE_DRIVER_SLEEP="60")
    deadline = time.monotonic() + 30
    while not (sbatch.log.exists() and "python3@" in sbatch.log.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, "the driver never started"
        time.sleep(0.02)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    job = sbatch.finish(process)
    assert job.returncode == 143
    assert time.monotonic() - started < 10, "the trap must not wait for the driver to finish on its own"
    assert_ray_stopped_everywhere(job, after=job.index(r"^python3@"))


def test_nodes_that_never_join_fail_with_a_clear_error(sbatch):
    job = sbatch(FAKE_MAX_NODES="2", JOIN_TIMEOUT="1")
    assert job.returncode != 0
    assert "only 2 of 3 Ray nodes joined 10.9.0.1:6379 within JOIN_TIMEOUT=1s" in job.stderr
    assert not job.lines(r"^python3@")
    assert_ray_stopped_everywhere(job)


def test_a_failed_ray_start_fails_fast(sbatch):
    job = sbatch(FAKE_FAIL_START="node2", JOIN_TIMEOUT="60")
    assert job.returncode != 0
    assert "ray start on node2 exited" in job.stderr
    assert not job.lines(r"^python3@")
    assert_ray_stopped_everywhere(job)


def test_head_address_on_the_named_interface(sbatch):
    job = sbatch(NCCL_SOCKET_IFNAME="ib0")
    assert job.returncode == 0, job.stderr
    job.index(r"^srun --nodes=1 --ntasks=1 -w node1 ip -4 -o addr show dev ib0$")
    job.index(r"ray start --head --node-ip-address=10\.8\.0\.1 ")
    job.index(r"^python3@node1 RAY_ADDRESS=10\.8\.0\.1:6379 NCCL_SOCKET_IFNAME=ib0 GLOO_SOCKET_IFNAME=ib0 ")


def test_head_ip_override_skips_discovery(sbatch):
    job = sbatch(HEAD_IP="192.168.7.7", RAY_PORT="6380")
    assert job.returncode == 0, job.stderr
    assert not job.lines(r"hostname|ip -4")
    job.index(r"ray start --head --node-ip-address=192\.168\.7\.7 --port=6380 ")
    assert len(job.lines(r"^srun .* ray start --address=192\.168\.7\.7:6380 ")) == len(NODES) - 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TEACHER": "frozen"}, "TEACHER=frozen needs TEACHER_NODES>=1"),
        ({"TEACHER_NODES": "1"}, "only applies to TEACHER=frozen"),
        ({"TEACHER": "frozen", "TEACHER_NODES": "3"}, "leaves no trainer node"),
        ({"METHOD": "ppo"}, "run_ppo.sh not found"),
    ],
)
def test_inconsistent_requests_are_refused_before_ray_starts(sbatch, env, message):
    job = sbatch(**env)
    assert job.returncode == 2
    assert message in job.stderr
    assert not job.lines(r"ray start")


def test_outside_slurm_it_says_so(tmp_path):
    completed = subprocess.run(
        ["bash", str(SBATCH)],
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SLURM_SUBMIT_DIR": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert "SLURM_JOB_NODELIST" in completed.stderr
