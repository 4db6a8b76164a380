"""scripts/compare_methods.py without training: each method's hydra command (composed into the trainer's
config and checked), the CSV rows, the over-seed summary, the final table, the plot, and the resume/report
path on checked-in-shape metrics files."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config

from recipe.mopd.cpu.demo import training_command

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_methods.py"
spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)

ASSETS = {"model": "/m", "train": "/t.parquet", "val": "/v.parquet"}


def overrides_of(command: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in command if "=" in arg)


def test_runs_with_one_seed_share_everything_but_the_method(tmp_path):
    commands = {
        method: overrides_of(
            training_command(ASSETS, 8, compare.run_overrides(method, 1, tmp_path / method, []))
        )
        for method in compare.METHODS
    }
    seeded = {"data.seed": "1", "actor_rollout_ref.rollout.seed": "1", "mopd.seed": "1"}
    for method, overrides in commands.items():
        assert seeded.items() <= overrides.items(), method
        assert overrides["trainer.total_training_steps"] == "8"
        assert overrides["data.train_files"] == "/t.parquet"
    assert commands["grpo"]["distillation.enabled"] == "false"
    assert commands["opd"]["mopd.mode"] == "none"
    assert (commands["mopd_1s"]["mopd.mode"], commands["mopd_1s"]["mopd.num_success"]) == ("positive", "1")
    assert commands["mopd_2s1f"]["mopd.num_failure"] == "1"
    # extra overrides come last, so they win over the method's
    last = compare.run_overrides("opd", 0, tmp_path, ["mopd.mode=contrastive"])
    assert last[-1] == "mopd.mode=contrastive"


def cpu_config(hydra_config, overrides: list[str]):
    """The CPU run's resolved config after verl's validate_config (`platform=cpu` edits the defaults
    list, so this composes through hydra in full)."""
    config = hydra_config(["platform=cpu", *overrides])
    OmegaConf.resolve(config)
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    return config


@pytest.mark.parametrize("method", list(compare.METHODS))
def test_each_method_composes_into_a_valid_trainer_config(method, hydra_config, tmp_path):
    config = cpu_config(hydra_config, compare.run_overrides(method, 0, tmp_path, []))
    assert config.data.seed == 0
    if method == "grpo":
        assert not config.distillation.enabled
    else:
        assert config.distillation.enabled and config.mopd.mode == compare.METHODS[method][0].split("=")[1]


def test_real_task_overrides_compose(hydra_config, tmp_path):
    overrides = compare.run_overrides("mopd_2s1f", 0, tmp_path, compare.REAL_TASK_OVERRIDES)
    config = cpu_config(hydra_config, overrides)
    assert config.actor_rollout_ref.rollout.n == 8 and config.data.max_response_length == 128


def test_gsm_symbolic_needs_its_data(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir"):
        compare.task_assets("gsm_symbolic", None, tmp_path)
    with pytest.raises(SystemExit, match="data_prep.gsm_symbolic"):
        compare.task_assets("gsm_symbolic", tmp_path, tmp_path)


def metric_steps(rewards, aurocs=None):
    steps = []
    for step, reward in enumerate(rewards, 1):
        data = {"critic/score/mean": reward, "timing_s/step": 1.0}
        if aurocs is not None:
            data["mopd/signal/auroc"] = aurocs[step - 1]
        steps.append({"step": step, **data})
    return steps


def test_step_rows_leave_unlogged_metrics_empty():
    rows = compare.step_rows("grpo", 3, [{"step": 1, "val-core/x": 0.1}, *metric_steps([0.25, float("nan")])])
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["reward"] == 0.25 and rows[0]["auroc"] == "" and rows[0]["seed"] == 3
    assert rows[1]["reward"] == ""  # a non-finite value is not a number to average


def test_summary_and_final_table_over_seeds():
    rows = [
        *compare.step_rows("opd", 0, metric_steps([0.2, 0.4, 0.6], [0.5, 0.6, 0.7])),
        *compare.step_rows("opd", 1, metric_steps([0.4, 0.4, 0.8], [0.7, 0.6, 0.5])),
        *compare.step_rows("grpo", 0, metric_steps([0.1, 0.1, 0.1])),
    ]
    summary = {(r["method"], r["step"], r["metric"]): r for r in compare.summarize(rows)}
    cell = summary[("opd", 3, "reward")]
    assert cell["mean"] == pytest.approx(0.7) and cell["min"] == 0.6 and cell["max"] == 0.8
    assert cell["sd"] == pytest.approx(2**0.5 * 0.1) and cell["num_seeds"] == 2
    assert ("grpo", 1, "auroc") not in summary and summary[("grpo", 1, "reward")]["sd"] == 0.0
    table = {r["method"]: r for r in compare.final_table(rows, last=2)}
    # per seed: mean of the last 2 steps (0.5, 0.6), then the mean over seeds
    assert table["opd"]["reward_last"] == pytest.approx(0.55)
    assert table["opd"]["reward_first"] == pytest.approx(0.3) and table["opd"]["seeds"] == 2
    assert table["opd"]["auroc_mean"] == pytest.approx(0.6) and table["grpo"]["auroc_mean"] is None


def test_metric_series_leaves_a_gap_where_auroc_is_undefined():
    rows = [
        *compare.step_rows("opd", 0, metric_steps([0.2, 0.4, 0.6], [0.5, float("nan"), 0.7])),
        *compare.step_rows("opd", 1, metric_steps([0.4, 0.4, 0.8], [0.7, float("nan"), 0.5])),
    ]
    steps, mean, low, high = compare.metric_series(compare.summarize(rows), "opd", "auroc")
    assert steps == [1, 2, 3]
    assert mean[0] == pytest.approx(0.6) and mean[2] == pytest.approx(0.6)
    assert math.isnan(mean[1]) and math.isnan(low[1]) and math.isnan(high[1])
    assert (low[0], high[0]) == (0.5, 0.7)


def write_run(out: Path, method: str, seed: int, steps: list[dict]) -> None:
    run = out / "runs" / f"{method}_s{seed}"
    run.mkdir(parents=True)
    lines = [
        json.dumps({"step": s["step"], "data": {k: v for k, v in s.items() if k != "step"}}) for s in steps
    ]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_report_only_writes_csvs_and_plot_from_finished_runs(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "grpo", seed, metric_steps([0.1, 0.2, 0.3, 0.5]))
        write_run(tmp_path, "mopd_2s1f", seed, metric_steps([0.1, 0.1, 0.2, 0.2], [0.4, 0.5, 0.6, 0.7]))
    table = compare.main(
        [
            "--report-only",
            "--out",
            str(tmp_path),
            "--methods",
            "grpo",
            "mopd_2s1f",
            "--seeds",
            "0",
            "1",
            "--steps",
            "3",
        ]
    )
    steps = compare.read_csv(tmp_path / "steps.csv")
    assert len(steps) == 2 * 2 * 3  # step 4 lies beyond --steps
    assert {r["method"] for r in steps} == {"grpo", "mopd_2s1f"}
    summary = compare.read_csv(tmp_path / "summary.csv")
    assert {r["metric"] for r in summary if r["method"] == "grpo"} == {"reward"}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 3 steps: the last step alone (min(3, steps // 2) steps, at least 1)
    assert {r["method"]: round(r["reward_last"], 3) for r in table} == {"grpo": 0.3, "mopd_2s1f": 0.2}


def test_report_only_without_runs_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no finished runs"):
        compare.main(["--report-only", "--out", str(tmp_path)])


def test_a_finished_run_is_reused(tmp_path):
    write_run(tmp_path, "opd", 0, metric_steps([0.1, 0.2]))
    metrics = tmp_path / "runs" / "opd_s0" / "metrics.jsonl"
    assert compare.complete(metrics, 2) and not compare.complete(metrics, 3)
    assert not compare.complete(tmp_path / "missing.jsonl", 1)


def test_a_failed_run_is_retried_then_reported(tmp_path):
    # A stub command stands in for the trainer: it fails on its first attempt only.
    marker = tmp_path / "attempted"
    flaky = [
        sys.executable,
        "-c",
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); first = not p.exists(); p.touch(); sys.exit(first)",
    ]
    compare.train(flaky, tmp_path, timeout_s=60, retries=1)
    assert (tmp_path / "train.log").exists() and (tmp_path / "train.retry1.log").exists()
    with pytest.raises(SystemExit, match="failed 2 times"):
        compare.train([sys.executable, "-c", "raise SystemExit(2)"], tmp_path, timeout_s=60, retries=1)


def test_report_only_leaves_unfinished_runs_out(tmp_path, capsys):
    write_run(tmp_path, "opd", 0, metric_steps([0.1, 0.2, 0.3]))
    write_run(tmp_path, "opd", 1, metric_steps([0.5]))  # still training
    table = compare.main(
        ["--report-only", "--out", str(tmp_path), "--methods", "opd", "--seeds", "0", "1", "--steps", "3"]
    )
    assert table[0]["seeds"] == 1
    assert "opd seed 1: not finished, left out" in capsys.readouterr().out
