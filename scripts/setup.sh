#!/usr/bin/env bash
# Idempotent set-up of .venv at the repository root: CPU torch first, then the project.
# torch goes in before anything that depends on it, so the resolver never reaches for a CUDA build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${MOPD_EXTRAS:-dev}
# MOPD_REAL=0 leaves out the real model and problem sets (README); their tests then skip instead of failing.
[[ ${MOPD_REAL:-1} == 0 ]] || EXTRAS="${EXTRAS},real"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
.venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0 2> >(grep -v "is ignored: it is neither" >&2)
.venv/bin/python -m pip install -q torch==2.13.0 --config-settings editable_mode=compat -e ".[${EXTRAS}]" 2> >(grep -v "is ignored: it is neither" >&2)
[[ ${MOPD_REAL:-1} == 0 ]] || .venv/bin/python -m pip install -q --no-deps --require-hashes -r scripts/requirements-real.txt 2> >(grep -v "is ignored: it is neither" >&2)
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bubblewrap; }) \
        || echo "setup: bubblewrap not installed; the code sandbox falls back to unshare" >&2
fi
# Versions from package metadata: importing verl here would print its accelerator and engine warnings.
echo "setup: .venv ready ($(.venv/bin/python -c 'from importlib.metadata import version; print("torch", version("torch"), "verl", version("verl"))'))"
