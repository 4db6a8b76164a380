"""The `mopd:` config section as a typed object (see config/mopd_trainer.yaml for every key)."""

from __future__ import annotations

from dataclasses import dataclass

from recipe.mopd.peers import PeerConfig, PeerTemplates

# live/frozen are scored by the agent loop; ema/ref inside the actor update (engine_teacher.py).
ENGINE_TEACHERS = ("ema", "ref")
TEACHER_SOURCES = ("live", "frozen", *ENGINE_TEACHERS)


@dataclass(frozen=True)
class MOPDSettings:
    peers: PeerConfig
    teacher: str = "live"
    topk: int = 0

    def __post_init__(self):
        if self.teacher not in TEACHER_SOURCES:
            raise ValueError(f"mopd.teacher must be one of {TEACHER_SOURCES}, got {self.teacher!r}")
        if self.topk < 0:
            raise ValueError(f"mopd teacher top-k must be >= 0, got {self.topk}")

    @classmethod
    def from_config(cls, config) -> MOPDSettings:
        section = config.mopd
        templates = PeerTemplates(**dict(section.get("templates") or {}))
        peers = PeerConfig(
            mode=section.mode,
            num_success=int(section.num_success),
            num_failure=int(section.num_failure),
            failure_condition=section.failure_condition,
            success_threshold=float(section.success_threshold),
            selection=section.selection,
            strip_thinking=bool(section.strip_thinking),
            use_feedback=bool(section.use_feedback),
            include_tool_results=bool(section.get("include_tool_results", True)),
            max_peer_tokens=None if section.max_peer_tokens is None else int(section.max_peer_tokens),
            max_prompt_tokens=int(section.max_prompt_tokens),
            templates=templates,
            seed=int(section.seed),
        )
        loss = config.distillation.distillation_loss
        topk = int(loss.topk) if _uses_topk(loss.loss_mode) else 0
        return cls(peers=peers, teacher=section.teacher, topk=topk)


def _uses_topk(loss_mode: str) -> bool:
    from verl.trainer.distillation.losses import get_distillation_loss_settings

    return get_distillation_loss_settings(loss_mode).use_topk
