"""The `mopd_sync` V1 trainer mode: verl's synchronous trainer, plus MOPD's diagnostics, and without the
teacher pool when the teacher is the live student (it is scored on the rollout servers instead).

verl ties "distillation enabled" to "a teacher pool exists"; MOPD needs the distillation loss path with
either a pool (`mopd.teacher=frozen`) or none (`live`).
"""

from __future__ import annotations

import numpy as np
import transfer_queue as tq
from omegaconf import open_dict
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass

from recipe.mopd.diagnostics import mopd_step_metrics

TRAINER_MODE = "mopd_sync"


@register_trainer(TRAINER_MODE)
class MOPDTrainerSync(PPOTrainerSync):
    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.live_teacher = config.mopd.teacher == "live"
        if self.live_teacher:
            self.use_teacher_policy = False

    def _build_replay_buffer(self):
        # verl branches on `trainer_mode == "sync"` (replay buffer class, refills, weight sync); this mode
        # is the sync trainer under another registry name.
        self.trainer_mode = "sync"
        replay_buffer = super()._build_replay_buffer()
        # verl polls for finished groups every 2 s and exposes no knob; on CPU that wait is the whole step.
        replay_buffer.poll_interval = float(self.config.mopd.replay_poll_interval_s)
        return replay_buffer

    def _init_resource_pool_mgr(self, *args, **kwargs):
        if self.config.mopd.teacher != "live":
            return super()._init_resource_pool_mgr(*args, **kwargs)
        # The base method sizes a teacher pool whenever distillation is enabled; a live teacher needs none.
        distillation = self.config.distillation
        with open_dict(distillation):
            distillation.enabled = False
            try:
                return super()._init_resource_pool_mgr(*args, **kwargs)
            finally:
                distillation.enabled = True

    def _setup(self, *args, **kwargs):
        result = super()._setup(*args, **kwargs)
        if self.live_teacher:
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
