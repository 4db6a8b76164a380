#!/usr/bin/env bash
# Plain on-policy distillation (mopd.mode=none): the teacher reads the bare prompt, with MOPD's teacher and
# loss (default: the EMA self-teacher and the released JSD), so only the context differs from MOPD.
# TEACHER=ref|frozen TEACHER_MODEL_PATH=... distils from another checkpoint.
# DOMAIN=code|math|science|tool, MODEL=qwen3_4b|qwen3_8b; every other knob is an environment variable
# read by scripts/lib/mopd_common.sh. Extra arguments are appended as hydra overrides; --dry-run prints
# the command instead of running it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/mopd_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mopd_common.sh"
mopd_launch opd "$@"
