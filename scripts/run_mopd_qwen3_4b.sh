#!/usr/bin/env bash
# MOPD (contrastive 2S1F, live teacher, mopd_k1) for Qwen3-4B on one 8-GPU node with vLLM, with the
# paper's sizes: 32 prompts x 8 rollouts, lr 1e-5, response 4096, teacher prompt budget 10240.
# Every knob is an environment variable; extra arguments are appended as hydra overrides.
# --dry-run prints the final command instead of running it.
set -euo pipefail

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B}
DATA_DIR=${DATA_DIR:-$HOME/data/mopd}
TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/livecodebench_train.parquet}
VAL_FILES=${VAL_FILES:-$DATA_DIR/livecodebench_test.parquet}
MODE=${MODE:-contrastive}
TEACHER=${TEACHER:-live}
N_GPUS=${N_GPUS:-8}
NNODES=${NNODES:-1}
ROLLOUTS=${ROLLOUTS:-8}
PROMPTS=${PROMPTS:-32}
LR=${LR:-1e-5}
MAX_PROMPT=${MAX_PROMPT:-2048}
MAX_RESPONSE=${MAX_RESPONSE:-4096}
TEACHER_PROMPT=${TEACHER_PROMPT:-10240}
TP=${TP:-2}
STEPS=${STEPS:-100}
PROJECT=${PROJECT:-mopd}
EXPERIMENT=${EXPERIMENT:-qwen3_4b_${MODE}_${TEACHER}}

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
    shift
fi

data=(
    data.train_files="$TRAIN_FILES"
    data.val_files="$VAL_FILES"
    data.train_batch_size="$PROMPTS"
    data.max_prompt_length="$MAX_PROMPT"
    data.max_response_length="$MAX_RESPONSE"
    +data.apply_chat_template_kwargs.enable_thinking=false
)
model=(
    actor_rollout_ref.model.path="$MODEL_PATH"
    actor_rollout_ref.model.use_remove_padding=true
    actor_rollout_ref.model.enable_gradient_checkpointing=true
)
actor=(
    actor_rollout_ref.actor.optim.lr="$LR"
    actor_rollout_ref.actor.optim.lr_warmup_steps=10
    actor_rollout_ref.actor.ppo_mini_batch_size="$PROMPTS"
    actor_rollout_ref.actor.use_dynamic_bsz=true
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$((TEACHER_PROMPT + MAX_RESPONSE))
    actor_rollout_ref.actor.use_kl_loss=false
    actor_rollout_ref.actor.strategy=fsdp2
)
rollout=(
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.n="$ROLLOUTS"
    actor_rollout_ref.rollout.tensor_model_parallel_size="$TP"
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.max_model_len=$((TEACHER_PROMPT + MAX_RESPONSE + 64))
    actor_rollout_ref.rollout.max_num_batched_tokens=$((TEACHER_PROMPT + MAX_RESPONSE + 64))
    actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=$((TEACHER_PROMPT + MAX_RESPONSE))
    actor_rollout_ref.rollout.val_kwargs.do_sample=true
    actor_rollout_ref.rollout.val_kwargs.temperature=0.6
    actor_rollout_ref.rollout.val_kwargs.top_p=0.95
    actor_rollout_ref.rollout.val_kwargs.n=8
)
mopd=(
    mopd.teacher="$TEACHER"
    mopd.mode="$MODE"
    mopd.max_prompt_tokens="$TEACHER_PROMPT"
)
trainer=(
    trainer.n_gpus_per_node="$N_GPUS"
    trainer.nnodes="$NNODES"
    trainer.total_training_steps="$STEPS"
    trainer.project_name="$PROJECT"
    trainer.experiment_name="$EXPERIMENT"
    trainer.logger='["console","wandb"]'
    trainer.test_freq=5
    trainer.save_freq=20
)

command=(python3 -m recipe.mopd.main_mopd "${data[@]}" "${model[@]}" "${actor[@]}" "${rollout[@]}" "${mopd[@]}"
    "${trainer[@]}" "$@")
if ((dry_run)); then
    printf '%q ' "${command[@]}"
    printf '\n'
else
    exec "${command[@]}"
fi
