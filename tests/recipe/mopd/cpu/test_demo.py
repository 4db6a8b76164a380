"""The demo's console: one progress bar and a table row per step while the trainer's output goes to a log.

The trainer here is a stub process (a few lines of Python that write verl's file-logger format), so the
console logic is tested without training; the real trainer runs in tests/recipe/mopd/test_e2e_cpu.py.
"""

import sys

from recipe.mopd.cpu import demo

STUB_TRAINER = """
import json, sys, time
print("verl and ray chatter", flush=True)
print("a warning", file=sys.stderr, flush=True)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"step": 0, "data": {"val-core/acc": 0.5}}) + "\\n")
    for step in (1, 2, 3):
        f.write(json.dumps({"step": step, "data": {"critic/score/mean": step / 4}}) + "\\n")
        f.flush()
        time.sleep(0.2)
sys.exit(int(sys.argv[2]))
"""


def run_stub(tmp_path, exit_code=0, timeout_s=60.0):
    metrics, log = tmp_path / "metrics.jsonl", tmp_path / "train.log"
    command = [sys.executable, "-c", STUB_TRAINER, str(metrics), str(exit_code)]
    return demo.follow(command, {}, tmp_path, log, metrics, 3, timeout_s), log


def test_console_shows_rows_while_trainer_output_goes_to_the_log(tmp_path, capsys):
    code, log = run_stub(tmp_path)
    assert code == 0
    out = capsys.readouterr().out
    assert "chatter" not in out and "warning" not in out
    assert "verl and ray chatter" in log.read_text() and "a warning" in log.read_text()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["step", "reward"]
    # the validation record at step 0 is no table row
    assert [row.split()[:2] for row in lines[1:4]] == [["1", "0.250"], ["2", "0.500"], ["3", "0.750"]]


def test_a_failing_trainer_returns_its_exit_code(tmp_path):
    code, _ = run_stub(tmp_path, exit_code=3)
    assert code == 3


def test_a_trainer_past_its_timeout_is_stopped(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    code = demo.follow(command, {}, tmp_path, tmp_path / "log", tmp_path / "m.jsonl", 1, timeout_s=0.5)
    assert code == 124


def test_training_command_passes_platform_and_overrides():
    assets = {"model": "/m", "train": "/t", "val": "/v"}
    command = demo.training_command(assets, 40, ["a=1"], platform="cpu_vllm")
    assert command[1:3] == ["-m", "recipe.mopd.main_mopd"]
    assert "platform=cpu_vllm" in command and "trainer.total_training_steps=40" in command
    assert command[-1] == "a=1"
