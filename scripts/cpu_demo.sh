#!/usr/bin/env bash
# Main job on a fresh CPU machine: set up .venv, then a MOPD training run through verl on the tiny model.
# The console shows one progress bar and a table row per step; verl's and Ray's output goes to
# $MOPD_DEMO_OUT/train.log (the path is printed). At the end: the reward trend and
# $MOPD_DEMO_OUT/metrics.png. MOPD_DEMO_STEPS overrides the step count; extra args are hydra overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
steps=()
[[ -z ${MOPD_DEMO_STEPS:-} ]] || steps=(--steps "$MOPD_DEMO_STEPS")
exec .venv/bin/python -m recipe.mopd.cpu.demo --out "${MOPD_DEMO_OUT:-outputs/cpu_demo}" "${steps[@]}" "$@"
