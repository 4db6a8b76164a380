#!/usr/bin/env bash
# Main job on a fresh CPU machine: set up .venv, then a short MOPD training run through verl on the
# tiny model, with a per-step summary and outputs/cpu_demo/metrics.png. Extra args: hydra overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m recipe.mopd.cpu.demo --out "${MOPD_DEMO_OUT:-outputs/cpu_demo}" \
    --steps "${MOPD_DEMO_STEPS:-6}" "$@"
