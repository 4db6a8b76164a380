"""Read verl's file-logger metrics (one JSON object per step) and turn them into a per-step summary table
and a PNG of reward and the key MOPD metrics. Used by the CPU demo, the method comparison and the
benchmarks. `MetricsTail` follows the file while verl is still writing it."""

from __future__ import annotations

import json
import math
from pathlib import Path

SUMMARY_COLUMNS = (
    ("reward", "critic/score/mean"),
    ("auroc", "mopd/signal/auroc"),
    ("pair_acc", "mopd/signal/pairwise_accuracy"),
    ("succ_peer", "mopd/with_success_peer_frac"),
    ("fail_peer", "mopd/with_failure_peer_frac"),
    ("masked", "mopd/masked_frac"),
    ("t_prompt", "mopd/teacher_prompt_tokens/mean"),
    ("distill", "actor/distillation/loss"),
    ("grad_norm", "actor/grad_norm"),
    ("step_s", "timing_s/step"),
)
PLOTTED = (
    "critic/score/mean",
    "mopd/signal/auroc",
    "mopd/signal/mean",
    "mopd/with_failure_peer_frac",
    "actor/distillation/loss",
    "timing_s/step",
)


def _step(line: str) -> dict:
    record = json.loads(line)
    return {"step": record["step"], **record.get("data", {})}


def read_metrics(path: str | Path) -> list[dict]:
    """Steps in order, each a flat {metric: value} dict with a "step" key."""
    steps = [_step(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return sorted(steps, key=lambda s: s["step"])


class MetricsTail:
    """Follows a metrics file that another process appends to: each `read_new()` returns the steps whose
    line is complete since the last call (a half-written last line waits for its newline). A missing file
    reads as no steps yet."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [_step(line) for line in complete.decode().splitlines() if line.strip()]


def is_training_step(step: dict) -> bool:
    """verl logs validation-only records under the same step numbers; training steps carry a reward."""
    return "critic/score/mean" in step


def trend_window(num_steps: int, window: int) -> int:
    """The window `reward_trend` averages over: `window`, but at most half of the steps and at least 1."""
    return max(1, min(window, num_steps // 2 or 1))


def reward_trend(steps: list[dict], window: int = 5) -> tuple[float, float] | None:
    """(mean reward over the first `window` training steps, over the last `window`); None without steps.

    Per-step rewards of a 16-rollout batch are noisy (binomial sd ~0.12 at p=0.5), so single end points
    would mostly show noise.
    """
    rewards = [s["critic/score/mean"] for s in steps if is_training_step(s)]
    if not rewards:
        return None
    window = trend_window(len(rewards), window)
    return sum(rewards[:window]) / window, sum(rewards[-window:]) / window


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# Fixed widths, so rows printed one at a time while training runs line up under the header.
_WIDTHS = [5] + [max(len(name), 7) for name, _ in SUMMARY_COLUMNS]


def _line(cells: list[str]) -> str:
    return "  ".join(cell.rjust(width) for cell, width in zip(cells, _WIDTHS))


def table_header() -> str:
    return _line(["step"] + [name for name, _ in SUMMARY_COLUMNS])


def table_row(step: dict) -> str:
    return _line([str(step["step"])] + [_cell(step.get(key)) for _, key in SUMMARY_COLUMNS])


def summary_table(steps: list[dict]) -> str:
    return "\n".join([table_header()] + [table_row(s) for s in steps])


def plot_metrics(steps: list[dict], out_png: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, key in zip(axes.flat, PLOTTED):
        points = [(s["step"], s[key]) for s in steps if isinstance(s.get(key), (int, float))]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle("MOPD training (CPU demo)")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
