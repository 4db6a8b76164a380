"""Read verl's file-logger metrics (one JSON object per step) and turn them into a per-step summary table
and a PNG of reward and the key MOPD metrics. Used by the CPU demo and the benchmarks."""

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


def read_metrics(path: str | Path) -> list[dict]:
    """Steps in order, each a flat {metric: value} dict with a "step" key."""
    steps = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            steps.append({"step": record["step"], **record.get("data", {})})
    return sorted(steps, key=lambda s: s["step"])


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def summary_table(steps: list[dict]) -> str:
    header = ["step"] + [name for name, _ in SUMMARY_COLUMNS]
    rows = [[str(s["step"])] + [_cell(s.get(key)) for _, key in SUMMARY_COLUMNS] for s in steps]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + rows)


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
