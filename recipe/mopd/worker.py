"""verl's hybrid actor/rollout worker with MOPD's in-engine teacher (`mopd.teacher=ema|ref`).

The `mopd_sync` trainer puts `MOPDActorRolloutRefWorker` in verl's role -> worker mapping. Over verl's
`ActorRolloutRefWorker` it adds the teacher engine (`engine_teacher.EngineTeacher`), wraps the actor's
loss so the teacher terms are computed per micro-batch, advances the EMA teacher after every successful
optimizer step and saves/restores the teacher with verl's actor checkpoint.
"""

from __future__ import annotations

import math

import torch
from verl.single_controller.base.decorator import Dispatch, register
from verl.utils import tensordict_utils as tu
from verl.utils.device import get_device_name
from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker

from recipe.mopd.engine_teacher import (
    EngineTeacher,
    EngineTeacherLoss,
    EngineTeacherSettings,
    kept_response_tokens,
)
from recipe.mopd.losses import KEPT_TOKENS_KEY


class StudentTrainingWorker(TrainingWorker):
    """The actor's engine worker; `engine_teacher` is set once the teacher exists."""

    engine_teacher: EngineTeacher | None = None

    def train_batch(self, data):
        if self.engine_teacher is None:
            return super().train_batch(data)
        # One train_batch is one optimizer step over one mini-batch: the loss's exact token-mean over the
        # unmasked samples needs their token count over the whole mini-batch and all DP ranks.
        kept = torch.tensor([kept_response_tokens(data)], dtype=torch.long, device=get_device_name())
        torch.distributed.all_reduce(kept, group=self.engine.get_data_parallel_group())
        tu.assign_non_tensor(data, **{KEPT_TOKENS_KEY: int(kept.item())})
        output = super().train_batch(data)
        # The engine skips the optimizer step on a non-finite gradient norm; the teacher then stays too.
        if math.isfinite(tu.get(output, "metrics")["grad_norm"]):
            self.engine_teacher.after_optimizer_step()
        return output


class MOPDActorRolloutRefWorker(ActorRolloutRefWorker):
    actor_worker_cls = StudentTrainingWorker

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        super().init_model()
        self.engine_teacher = None
        if self.actor is None:
            return
        settings = EngineTeacherSettings.from_worker_config(self.config)
        self.engine_teacher = EngineTeacher.build(self.config, self.actor, settings)
        self.actor.engine_teacher = self.engine_teacher
        self.loss_fn = EngineTeacherLoss(self.loss_fn, self.engine_teacher)
        self.actor.set_loss_fn(self.loss_fn)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        super().save_checkpoint(local_path, hdfs_path, global_step, max_ckpt_to_keep)
        self.engine_teacher.save(local_path)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, local_path, hdfs_path=None, del_local_after_load=False):
        # Before the actor: verl may delete the local checkpoint once the actor has loaded it.
        self.engine_teacher.load(local_path)
        super().load_checkpoint(local_path, hdfs_path, del_local_after_load)
