#!/usr/bin/env bash
# Test command: set up .venv, then the whole suite, slow CPU end-to-end training runs included.
# pytest's own exit code is the result (5 = no tests collected fails too). Extra args go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick subset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0
exec .venv/bin/python -m pytest tests "$@"
