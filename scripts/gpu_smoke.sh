#!/usr/bin/env bash
# Check a GPU install before a cluster run: 2 MOPD steps (the released objective: EMA self-teacher, JSD over
# the student's top-k, rollout-mismatch weight) through verl's vLLM rollout on ONE GPU with a small model,
# on the bundled addition task (no data download), then print what was verified.
#
#   bash scripts/gpu_smoke.sh MODEL_PATH [--dry-run] [hydra overrides...]
#
# MODEL_PATH: a small chat model (local directory or hub id), e.g. Qwen/Qwen3-0.6B. TEACHER=live checks the
# rollout-server teacher instead (prompt log-probs on vLLM); OUT picks the output directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: bash scripts/gpu_smoke.sh MODEL_PATH [--dry-run] [hydra overrides...]  (--dry-run follows MODEL_PATH; PYTHON picks the interpreter, e.g. PYTHON=.venv/bin/python; a real run writes the data files the dry run names)" >&2
    exit 2
fi
MODEL_PATH=$1
shift
dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
    shift
fi
PYTHON=${PYTHON:-python3}
OUT=$(realpath -m "${OUT:-outputs/gpu_smoke}")
TEACHER=${TEACHER:-ema}
STEPS=2
MAX_RESPONSE=256
TEACHER_PROMPT=2048

case "$TEACHER" in
    ema) teacher_args=(mopd.teacher=ema mopd.ema_rate=0.05
        distillation.distillation_loss.loss_mode=mopd_jsd_student_topk
        distillation.distillation_loss.use_policy_gradient=false) ;;
    live) teacher_args=(mopd.teacher=live distillation.distillation_loss.loss_mode=mopd_k1
        distillation.distillation_loss.use_policy_gradient=true) ;;
    *) echo "error: TEACHER must be ema or live (got '$TEACHER')" >&2; exit 2 ;;
esac

data=(
    data.train_files="$OUT/data/tiny_add_train.parquet"
    data.val_files="$OUT/data/tiny_add_val.parquet"
    data.train_batch_size=4
    data.max_prompt_length=256
    data.max_response_length="$MAX_RESPONSE"
    +data.apply_chat_template_kwargs.enable_thinking=false
)
actor=(
    actor_rollout_ref.model.path="$MODEL_PATH"
    actor_rollout_ref.actor.strategy=fsdp2
    actor_rollout_ref.actor.optim.lr=1e-6
    actor_rollout_ref.actor.ppo_mini_batch_size=4
    actor_rollout_ref.actor.use_dynamic_bsz=true
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$((TEACHER_PROMPT + MAX_RESPONSE))
    actor_rollout_ref.actor.use_kl_loss=false
)
# The live teacher scores [teacher prompt ; response] on the rollout servers, so their context holds it.
rollout=(
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.n=4
    actor_rollout_ref.rollout.tensor_model_parallel_size=1
    actor_rollout_ref.rollout.gpu_memory_utilization=0.4
    actor_rollout_ref.rollout.max_model_len=$((TEACHER_PROMPT + MAX_RESPONSE + 64))
    actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=$((TEACHER_PROMPT + MAX_RESPONSE))
)
mopd=(
    "${teacher_args[@]}"
    mopd.mode=contrastive
    mopd.max_prompt_tokens="$TEACHER_PROMPT"
    distillation.distillation_loss.topk=20
    +actor_rollout_ref.rollout.engine_kwargs.vllm.max_logprobs=20
)
trainer=(
    trainer.n_gpus_per_node=1
    trainer.nnodes=1
    trainer.total_training_steps="$STEPS"
    trainer.val_before_train=false
    trainer.test_freq=-1
    trainer.save_freq=-1
    trainer.logger='["console","file"]'
    trainer.project_name=mopd_smoke
    trainer.experiment_name=gpu_smoke
    trainer.default_local_dir="$OUT/checkpoints"
)
command=("$PYTHON" -m recipe.mopd.main_mopd "${data[@]}" "${actor[@]}" "${rollout[@]}" "${mopd[@]}" "${trainer[@]}" "$@")
if ((dry_run)); then
    printf '%q ' "${command[@]}"
    printf '\n'
    exit 0
fi

mkdir -p "$OUT/data"
"$PYTHON" - "$OUT/data" <<'PY'
import sys
from pathlib import Path

from recipe.mopd.cpu.tiny_task import make_rows, write_parquet

out = Path(sys.argv[1])
write_parquet(make_rows(64, seed=11, split="train"), out / "tiny_add_train.parquet")
write_parquet(make_rows(16, seed=12, split="val"), out / "tiny_add_val.parquet")
PY
rm -f "$OUT/metrics.jsonl"
echo "gpu_smoke: training log in $OUT/train.log"
VERL_FILE_LOGGER_PATH="$OUT/metrics.jsonl" "${command[@]}" >"$OUT/train.log" 2>&1 || {
    tail -n 40 "$OUT/train.log" >&2
    echo "gpu_smoke: training failed; full log: $OUT/train.log" >&2
    exit 1
}
echo "gpu_smoke: $MODEL_PATH, vLLM rollout, TEACHER=$TEACHER, $STEPS steps:"
exec "$PYTHON" -m recipe.mopd.smoke_check "$OUT/metrics.jsonl" --steps "$STEPS"
