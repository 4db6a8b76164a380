"""The `mopd_sync` V1 trainer mode: verl's synchronous trainer, plus MOPD's diagnostics, and without the
teacher pool unless the teacher is served by it (`mopd.teacher=frozen`).

verl ties "distillation enabled" to "a teacher pool exists"; MOPD needs the distillation loss path with
either a pool (`frozen`) or none: `live` scores on the rollout servers, `ema`/`ref` run the teacher inside
the actor workers, which this trainer swaps for `worker.MOPDActorRolloutRefWorker`.
"""

from __future__ import annotations

import numpy as np
import ray
import transfer_queue as tq
from omegaconf import open_dict
from verl.trainer.ppo.utils import Role
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass

from recipe.mopd.diagnostics import mopd_step_metrics
from recipe.mopd.engine_teacher import ENGINE_TEACHERS, EngineTeacherSettings
from recipe.mopd.worker import MOPDActorRolloutRefWorker

TRAINER_MODE = "mopd_sync"


@register_trainer(TRAINER_MODE)
class MOPDTrainerSync(PPOTrainerSync):
    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.live_teacher = config.mopd.teacher == "live"
        self.engine_teacher = config.mopd.teacher in ENGINE_TEACHERS
        self.without_teacher_pool = self.live_teacher or self.engine_teacher
        if self.without_teacher_pool:
            self.use_teacher_policy = False
        if self.engine_teacher:
            EngineTeacherSettings.from_config(config).attach_to(config)

    def _build_replay_buffer(self):
        # verl branches on `trainer_mode == "sync"` (replay buffer class, refills, weight sync); this mode
        # is the sync trainer under another registry name.
        self.trainer_mode = "sync"
        replay_buffer = super()._build_replay_buffer()
        # verl polls for finished groups every 2 s and exposes no knob; on CPU that wait is the whole step.
        replay_buffer.poll_interval = float(self.config.mopd.replay_poll_interval_s)
        return replay_buffer

    def _init_resource_pool_mgr(self, *args, **kwargs):
        if not self.without_teacher_pool:
            return super()._init_resource_pool_mgr(*args, **kwargs)
        # The base method sizes a teacher pool whenever distillation is enabled; live/ema/ref need none.
        distillation = self.config.distillation
        with open_dict(distillation):
            distillation.enabled = False
            try:
                result = super()._init_resource_pool_mgr(*args, **kwargs)
            finally:
                distillation.enabled = True
        if self.engine_teacher:
            for role in (Role.ActorRollout, Role.ActorRolloutRef, Role.Actor):
                if role in self.role_worker_mapping:
                    self.role_worker_mapping[role] = ray.remote(MOPDActorRolloutRefWorker)
        return result

    def _setup(self, *args, **kwargs):
        result = super()._setup(*args, **kwargs)
        if self.without_teacher_pool:
            # The base class builds this only alongside a teacher pool; the actor update still needs it.
            self.distillation_config = omega_conf_to_dataclass(self.config.distillation)
        return result

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        result = super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        non_padding = np.array([not tag.get("is_padding", False) for tag in batch.tags], dtype=bool)
        fetched = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"]
        )
        extra_fields = fetched.pop("extra_fields").tolist()
        diagnostics = [
            fields["mopd"]
            for fields, keep in zip(extra_fields, non_padding)
            if keep and isinstance(fields, dict) and "mopd" in fields
        ]
        metrics.update(mopd_step_metrics(diagnostics, self.config.mopd.success_threshold))
        return result
