#!/usr/bin/env bash
# Plain on-policy distillation (mopd.mode=none): the teacher reads the bare prompt. With the default live
# self-teacher that is the no-context control (teacher = student); TEACHER=frozen TEACHER_MODEL_PATH=...
# distils from another checkpoint.
# DOMAIN=code|math|science|tool, MODEL=qwen3_4b|qwen3_8b; every other knob is an environment variable
# read by scripts/lib/mopd_common.sh. Extra arguments are appended as hydra overrides; --dry-run prints
# the command instead of running it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/mopd_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mopd_common.sh"
mopd_launch opd "$@"
