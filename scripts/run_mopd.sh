#!/usr/bin/env bash
# MOPD as released (contrastive 2S1F; EMA self-teacher, rate 0.05, inside the actor; JSD alpha 0.5 over the
# student's top-100 + tail; token-level rollout-mismatch weight capped at 2) on one 8-GPU node with vLLM.
# TEACHER=ref|live|frozen picks another teacher with the loss it supports (LOSS overrides).
# DOMAIN=code|math|science|tool, MODEL=qwen3_4b|qwen3_8b; every other knob is an environment variable
# read by scripts/lib/mopd_common.sh. Extra arguments are appended as hydra overrides; --dry-run prints
# the command instead of running it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/mopd_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mopd_common.sh"
mopd_launch mopd "$@"
