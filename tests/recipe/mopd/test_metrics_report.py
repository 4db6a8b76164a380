"""Reading verl's file-logger metrics: while it is being written, as a table, as a reward trend, as a plot."""

import json

import pytest

from recipe.mopd.metrics_report import (
    MetricsTail,
    is_training_step,
    plot_metrics,
    read_metrics,
    reward_trend,
    summary_table,
    table_header,
    table_row,
    trend_window,
)


def line(step: int, **data) -> str:
    return json.dumps({"step": step, "data": data}) + "\n"


def test_tail_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []  # not written yet
    path.write_text(line(1, **{"critic/score/mean": 0.25}) + '{"step": 2, "da')
    assert tail.read_new() == [{"step": 1, "critic/score/mean": 0.25}]
    assert tail.read_new() == []  # the half-written line waits for its newline
    with open(path, "a") as f:
        f.write('ta": {"critic/score/mean": 0.5}}\n' + line(3))
    assert [s["step"] for s in tail.read_new()] == [2, 3]
    assert [s["step"] for s in read_metrics(path)] == [1, 2, 3]


def test_validation_records_are_not_training_steps():
    assert is_training_step({"step": 1, "critic/score/mean": 0.0})
    assert not is_training_step({"step": 1, "val-core/math/acc/mean@2": 0.5})


def test_reward_trend_averages_a_window_at_each_end():
    steps = [{"step": i, "critic/score/mean": r} for i, r in enumerate([0.1, 0.2, 0.3, 0.5, 0.6, 0.7], 1)]
    assert reward_trend(steps, window=2) == pytest.approx((0.15, 0.65))
    # the window shrinks to half the run so the two ends never overlap
    assert reward_trend(steps, window=5) == pytest.approx((0.2, 0.6))
    assert reward_trend(steps[:1], window=5) == (0.1, 0.1)
    assert reward_trend([{"step": 1, "val-core/x": 1.0}]) is None


def test_rows_printed_one_by_one_line_up_with_the_header():
    steps = [
        {"step": 1, "critic/score/mean": 0.25, "mopd/signal/auroc": 0.5, "timing_s/step": 12.0},
        {"step": 12, "critic/score/mean": 1.0},
    ]
    header, rows = table_header(), [table_row(s) for s in steps]
    assert {len(header)} == {len(r) for r in rows}
    assert header.split()[:3] == ["step", "reward", "auroc"]
    assert rows[0].split()[:3] == ["1", "0.250", "0.500"] and rows[1].split()[2] == "-"
    assert summary_table(steps).splitlines() == [header, *rows]


def test_plot_is_a_png(tmp_path):
    steps = [{"step": i, "critic/score/mean": 0.1 * i, "timing_s/step": 1.0} for i in (1, 2, 3)]
    png = plot_metrics(steps, tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trend_window_is_what_reward_trend_averages_over():
    # the demo prints this number: 6 steps with a window of 5 average 3 at each end
    assert [trend_window(n, 5) for n in (1, 2, 6, 10, 40)] == [1, 1, 3, 5, 5]
