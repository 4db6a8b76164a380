#!/usr/bin/env bash
# SDPO-like baseline: positive peer imitation with one successful peer, verifier feedback when none
# succeeded (per domain, see the library), otherwise MOPD's setup (teacher, loss, sizes) unchanged.
# DOMAIN=code|math|science|tool, MODEL=qwen3_4b|qwen3_8b; every other knob is an environment variable
# read by scripts/lib/mopd_common.sh. Extra arguments are appended as hydra overrides; --dry-run prints
# the command instead of running it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/mopd_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mopd_common.sh"
mopd_launch sdpo "$@"
