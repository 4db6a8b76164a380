#!/usr/bin/env bash
# GRPO baseline: verl's own GRPO through the same entry point (no teacher, verl's agent loop and sync
# trainer) with the paper's GRPO settings and the same sizes as MOPD.
# DOMAIN=code|math|science|tool, MODEL=qwen3_4b|qwen3_8b; every other knob is an environment variable
# read by scripts/lib/mopd_common.sh. Extra arguments are appended as hydra overrides; --dry-run prints
# the command instead of running it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/mopd_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mopd_common.sh"
mopd_launch grpo "$@"
