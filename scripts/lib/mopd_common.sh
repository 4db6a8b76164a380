# shellcheck shell=bash
# Shared body of scripts/run_{mopd,opd,sdpo,grpo}.sh: one method x DOMAIN x MODEL on vLLM, with the
# paper's sizes for every method (32 prompts x 8 rollouts, lr 1e-5, response 4096, teacher prompt budget
# 10240, thinking off, validation n=8 T=0.6 top_p=0.95, token-level rollout-mismatch weight capped at 2),
# so runs differ only in what the method changes. The distillation methods default to the released MOPD
# objective: EMA self-teacher (rate 0.05 per optimizer step) inside the actor, JSD(alpha 0.5) over the
# student's top-100 + tail; TEACHER=ref|live|frozen pick another teacher with the loss it supports.
#
#   mopd_launch METHOD [--dry-run] [hydra overrides...]
#
# Every value read below is an environment variable with a default; extra arguments are appended last,
# so they win over anything set here. --dry-run prints the final command instead of running it.

mopd_die() {
    echo "error: $*" >&2
    exit 2
}

mopd_launch() {
    local method=$1
    shift
    local dry_run=0
    if [[ "${1:-}" == "--dry-run" ]]; then
        dry_run=1
        shift
    fi

    DOMAIN=${DOMAIN:-code}
    MODEL=${MODEL:-qwen3_4b}
    TEACHER=${TEACHER:-ema}
    DATA_DIR=${DATA_DIR:-$HOME/data/mopd}
    SCIENCE_DOMAIN=${SCIENCE_DOMAIN:-biology}

    local default_model_path default_train default_val default_feedback
    case "$MODEL" in
        qwen3_4b) default_model_path=Qwen/Qwen3-4B ;;
        qwen3_8b) default_model_path=Qwen/Qwen3-8B ;;
        *) mopd_die "MODEL must be qwen3_4b or qwen3_8b (got '$MODEL'); MODEL_PATH picks the checkpoint" ;;
    esac
    # Feedback reaches the teacher only when no peer succeeded. Code feedback describes failures on the
    # public tests and math feedback quotes the rollout's own answer; science feedback on 2-choice
    # questions and tool feedback (missing calls, argument differences) give the gold answer away, which
    # is why SDPO's own science and tool runs had it off.
    case "$DOMAIN" in
        code)
            default_train=$DATA_DIR/livecodebench_train.parquet
            default_val=$DATA_DIR/livecodebench_test.parquet
            default_feedback=true
            ;;
        math)
            default_train=$DATA_DIR/deepmath_train.parquet
            local benchmark eval_files=()
            for benchmark in aime2024 aime2025 hmmt_feb2025 hmmt_nov2025; do
                eval_files+=("'$DATA_DIR/${benchmark}_test.parquet'")
            done
            default_val="[$(IFS=,; echo "${eval_files[*]}")]"
            default_feedback=true
            ;;
        science)
            default_train=$DATA_DIR/sciknoweval_${SCIENCE_DOMAIN}_train.parquet
            default_val=$DATA_DIR/sciknoweval_${SCIENCE_DOMAIN}_test.parquet
            default_feedback=false
            ;;
        tool)
            default_train=$DATA_DIR/toolalpaca_train.parquet
            default_val=$DATA_DIR/toolalpaca_test.parquet
            default_feedback=false
            ;;
        tool_multiturn)
            default_train=$DATA_DIR/bfcl_multiturn_train.parquet
            default_val=$DATA_DIR/bfcl_multiturn_test.parquet
            default_feedback=false
            ;;
        *) mopd_die "DOMAIN must be code, math, science, tool or tool_multiturn (got '$DOMAIN')" ;;
    esac

    # ema/ref run inside the actor and see the student's logits: the released loss. live/frozen score on
    # servers, which return the teacher's log-probs of given tokens only: the sampled-token reverse KL
    # (mopd_k1) as a policy gradient; LOSS=mopd_jsd uses their top-k instead.
    local default_loss
    case "$TEACHER" in
        ema | ref) default_loss=mopd_jsd_student_topk ;;
        live | frozen) default_loss=mopd_k1 ;;
        *) mopd_die "TEACHER must be ema, ref, live or frozen (got '$TEACHER')" ;;
    esac
    LOSS=${LOSS:-$default_loss}
    case "$LOSS" in
        mopd_jsd_student_topk)
            [[ "$TEACHER" == ema || "$TEACHER" == ref ]] ||
                mopd_die "LOSS=mopd_jsd_student_topk needs the student's logits: TEACHER=ema or ref (got '$TEACHER')"
            ;;
        mopd_k1 | mopd_jsd) ;;
        *) mopd_die "LOSS must be mopd_jsd_student_topk, mopd_jsd or mopd_k1 (got '$LOSS')" ;;
    esac
    local policy_gradient=false
    if [[ "$LOSS" == mopd_k1 ]]; then
        policy_gradient=true
    fi

    local default_mode default_success=2
    case "$method" in
        mopd) default_mode=contrastive ;;
        sdpo)
            default_mode=positive
            default_success=1
            ;;
        opd | grpo) default_mode=none ;;
        *) mopd_die "unknown method '$method'" ;;
    esac

    MODEL_PATH=${MODEL_PATH:-$default_model_path}
    TRAIN_FILES=${TRAIN_FILES:-$default_train}
    VAL_FILES=${VAL_FILES:-$default_val}
    MODE=${MODE:-$default_mode}
    NUM_SUCCESS=${NUM_SUCCESS:-$default_success}
    NUM_FAILURE=${NUM_FAILURE:-1}
    FEEDBACK=${FEEDBACK:-$default_feedback}
    PROMPTS=${PROMPTS:-32}
    ROLLOUTS=${ROLLOUTS:-8}
    LR=${LR:-1e-5}
    MAX_PROMPT=${MAX_PROMPT:-2048}
    MAX_RESPONSE=${MAX_RESPONSE:-4096}
    TEACHER_PROMPT=${TEACHER_PROMPT:-10240}
    EMA_RATE=${EMA_RATE:-0.05}
    JSD_ALPHA=${JSD_ALPHA:-0.5}
    TOPK=${TOPK:-100}
    IS_THRESHOLD=${IS_THRESHOLD:-2.0}
    # Server-side teachers score [teacher prompt ; response], so their context must hold the longest
    # teacher input; the live teacher does so on the rollout servers themselves.
    local teacher_context=$((TEACHER_PROMPT + MAX_RESPONSE + 64)) default_context=$((MAX_PROMPT + MAX_RESPONSE))
    if [[ "$TEACHER" == live && "$method" != grpo ]]; then
        default_context=$teacher_context
    fi
    CONTEXT=${CONTEXT:-$default_context}
    # Tokens per micro-batch under dynamic batching (the released MOPD runs used 18944 per GPU).
    TOKENS_PER_GPU=${TOKENS_PER_GPU:-$((TEACHER_PROMPT + MAX_RESPONSE))}
    TP=${TP:-2}
    GPU_MEM=${GPU_MEM:-0.6}
    GPUS_PER_NODE=${GPUS_PER_NODE:-8}
    NNODES=${NNODES:-1}
    STEPS=${STEPS:-100}
    TEST_FREQ=${TEST_FREQ:-5}
    SAVE_FREQ=${SAVE_FREQ:-20}
    PROJECT=${PROJECT:-mopd}
    LOGGER=${LOGGER:-'["console","wandb"]'}
    PYTHON=${PYTHON:-python3}

    local run_name=${MODEL}_${DOMAIN}
    if [[ "$DOMAIN" == science ]]; then
        run_name+=-$SCIENCE_DOMAIN
    fi
    run_name+=_$method
    if [[ "$method" != grpo ]]; then
        run_name+=_$TEACHER
    fi
    EXPERIMENT=${EXPERIMENT:-$run_name}

    case "$TEACHER" in
        ema | ref | live) N_GPUS=${N_GPUS:-$GPUS_PER_NODE} ;;
        frozen)
            [[ "$method" != grpo ]] || mopd_die "TEACHER=frozen has no meaning for GRPO (no teacher)"
            # Without dedicated teacher nodes the pool takes half of the trainer's node: the trainer's
            # GPU count must divide the 256 sequences of a step, which rules out 6+2 or 7+1.
            TEACHER_NNODES=${TEACHER_NNODES:-1}
            TEACHER_GPUS=${TEACHER_GPUS:-$((GPUS_PER_NODE / 2))}
            N_GPUS=${N_GPUS:-$((GPUS_PER_NODE - TEACHER_GPUS))}
            TEACHER_MODEL_PATH=${TEACHER_MODEL_PATH:-$MODEL_PATH}
            TEACHER_TP=${TEACHER_TP:-$TP}
            # The teacher pool's GPUs hold nothing but the teacher's weights and KV cache.
            TEACHER_GPU_MEM=${TEACHER_GPU_MEM:-0.8}
            ;;
    esac

    local data=(
        data.train_files="$TRAIN_FILES"
        data.val_files="$VAL_FILES"
        data.train_batch_size="$PROMPTS"
        data.max_prompt_length="$MAX_PROMPT"
        data.max_response_length="$MAX_RESPONSE"
        # verl's default is to raise on the first over-long prompt; the paper drops them.
        data.filter_overlong_prompts=true
        +data.apply_chat_template_kwargs.enable_thinking=false
    )
    local model=(
        actor_rollout_ref.model.path="$MODEL_PATH"
        actor_rollout_ref.model.use_remove_padding=true
        actor_rollout_ref.model.enable_gradient_checkpointing=true
    )
    # One optimizer step per batch (mini-batch = batch): strictly on-policy, as in the paper.
    local actor=(
        actor_rollout_ref.actor.optim.lr="$LR"
        actor_rollout_ref.actor.optim.lr_warmup_steps=10
        actor_rollout_ref.actor.ppo_mini_batch_size="$PROMPTS"
        actor_rollout_ref.actor.use_dynamic_bsz=true
        actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$TOKENS_PER_GPU"
        actor_rollout_ref.actor.use_kl_loss=false
        actor_rollout_ref.actor.strategy=fsdp2
    )
    local rollout=(
        actor_rollout_ref.rollout.name=vllm
        actor_rollout_ref.rollout.n="$ROLLOUTS"
        actor_rollout_ref.rollout.tensor_model_parallel_size="$TP"
        actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEM"
        actor_rollout_ref.rollout.max_model_len="$CONTEXT"
        actor_rollout_ref.rollout.max_num_batched_tokens="$CONTEXT"
        actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
        actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$TOKENS_PER_GPU"
        actor_rollout_ref.rollout.val_kwargs.do_sample=true
        actor_rollout_ref.rollout.val_kwargs.temperature=0.6
        actor_rollout_ref.rollout.val_kwargs.top_p=0.95
        actor_rollout_ref.rollout.val_kwargs.n=8
    )
    # Multi-turn tool episodes through verl's tool_agent loop (the rows name it in agent_name): BFCL's
    # functions are recording tools (data_prep/bfcl_multiturn.py), so an episode is a call, its
    # acknowledgement and a closing turn; TOOL_TURNS caps the policy's turns.
    local multi_turn=()
    if [[ "$DOMAIN" == tool_multiturn ]]; then
        TOOL_CONFIG=${TOOL_CONFIG:-$DATA_DIR/bfcl_multiturn_tools.yaml}
        multi_turn=(
            actor_rollout_ref.rollout.multi_turn.enable=true
            actor_rollout_ref.rollout.multi_turn.tool_config_path="$TOOL_CONFIG"
            actor_rollout_ref.rollout.multi_turn.format=hermes
            actor_rollout_ref.rollout.multi_turn.max_assistant_turns="${TOOL_TURNS:-2}"
        )
    fi
    local method_args
    if [[ "$method" == grpo ]]; then
        # verl's own GRPO through the same entry point: no teacher, verl's agent loop and sync trainer.
        # The rest is the paper's GRPO baseline: no std normalisation, clip-higher 0.28, token-level
        # rollout importance sampling (threshold 2.0, verl's default).
        method_args=(
            distillation.enabled=false
            trainer.v1.trainer_mode=sync
            actor_rollout_ref.rollout.agent.agent_loop_manager_class=null
            algorithm.adv_estimator=grpo
            algorithm.norm_adv_by_std_in_grpo=false
            actor_rollout_ref.actor.clip_ratio_high=0.28
        )
    else
        method_args=(
            mopd.teacher="$TEACHER"
            distillation.distillation_loss.loss_mode="$LOSS"
            distillation.distillation_loss.use_policy_gradient="$policy_gradient"
            distillation.distillation_loss.topk="$TOPK"
            mopd.jsd_alpha="$JSD_ALPHA"
            mopd.is_clip=2.0
            mopd.mode="$MODE"
            mopd.num_success="$NUM_SUCCESS"
            mopd.num_failure="$NUM_FAILURE"
            mopd.use_feedback="$FEEDBACK"
            mopd.max_prompt_tokens="$TEACHER_PROMPT"
        )
        if [[ "$TEACHER" == ema ]]; then
            method_args+=(mopd.ema_rate="$EMA_RATE")
        fi
        if [[ "$TEACHER" == ref && -n "${TEACHER_MODEL_PATH:-}" ]]; then
            method_args+=(distillation.teacher_models.teacher_model.model_path="$TEACHER_MODEL_PATH")
        fi
        if [[ "$TEACHER" == frozen ]]; then
            local teacher=distillation.teacher_models.teacher_model
            method_args+=(
                distillation.n_gpus_per_node="$TEACHER_GPUS"
                distillation.nnodes="$TEACHER_NNODES"
                "$teacher.model_path=$TEACHER_MODEL_PATH"
                "$teacher.inference.tensor_model_parallel_size=$TEACHER_TP"
                "$teacher.inference.gpu_memory_utilization=$TEACHER_GPU_MEM"
                "$teacher.inference.max_model_len=$teacher_context"
                "$teacher.inference.max_num_batched_tokens=$teacher_context"
            )
        fi
    fi
    local trainer=(
        trainer.n_gpus_per_node="$N_GPUS"
        trainer.nnodes="$NNODES"
        trainer.total_training_steps="$STEPS"
        trainer.test_freq="$TEST_FREQ"
        trainer.save_freq="$SAVE_FREQ"
        trainer.project_name="$PROJECT"
        trainer.experiment_name="$EXPERIMENT"
        trainer.logger="$LOGGER"
    )

    # The released runs weight every token's loss by min(pi_old / pi_rollout, 2) (verl's token-level TIS).
    local correction=(
        algorithm.rollout_correction.rollout_is=token
        algorithm.rollout_correction.rollout_is_threshold="$IS_THRESHOLD"
    )
    local command=("$PYTHON" -m recipe.mopd.main_mopd "${data[@]}" "${model[@]}" "${actor[@]}" "${rollout[@]}"
        "${correction[@]}" "${multi_turn[@]}" "${method_args[@]}" "${trainer[@]}" "$@")
    if ((dry_run)); then
        printf '%q ' "${command[@]}"
        printf '\n'
    else
        exec "${command[@]}"
    fi
}
