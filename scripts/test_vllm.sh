#!/usr/bin/env bash
# The vLLM layer: set up .venv-vllm (scripts/setup_vllm.sh), then every `vllm`-marked test — verl's real
# vLLM server on CPU: prompt log-prob parity and main_mopd runs for each teacher source. A missing vLLM
# fails the run (MOPD_REQUIRE_VLLM=1), never skips it. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_vllm.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 MOPD_REQUIRE_VLLM=1
exec .venv-vllm/bin/python -m pytest tests -m vllm "$@"
