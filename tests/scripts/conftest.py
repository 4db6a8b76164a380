"""The GPU launch commands are checked on CPU by building the full hydra config they would train with
(verl's ppo_trainer + the recipe's delta + their overrides) and running the checks the trainer runs before
it touches a GPU.

Composing through hydra costs about a second per command (it rebuilds ppo_trainer's defaults tree), too
slow for every method x domain x model. The overrides here never touch the defaults list, so the base
config is composed once and each command's overrides are applied by hydra's own override step;
`test_fast_composition_matches_hydra_compose` pins that equivalence.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

from recipe.mopd import main_mopd

CONFIG_DIR = Path(__file__).resolve().parents[2] / "recipe/mopd/config"
CONFIG_NAME = "mopd_trainer"


def hydra_compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=CONFIG_NAME, overrides=list(overrides))


@pytest.fixture(scope="session")
def hydra_config() -> Callable[[Sequence[str]], DictConfig]:
    return hydra_compose


@pytest.fixture(scope="session")
def compose_config() -> Callable[[Sequence[str]], DictConfig]:
    base = hydra_compose([])
    parser = OverridesParser.create()

    def apply(overrides: Sequence[str]) -> DictConfig:
        config = copy.deepcopy(base)
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(list(overrides)), config)
        return config

    return apply


@pytest.fixture(scope="session")
def trainer_config(compose_config) -> Callable[[Sequence[str]], DictConfig]:
    """The resolved config of a command's overrides, after verl's validate_config, the recipe's teacher
    context check and verl's DistillationConfig checks (teacher pool size, teacher context)."""

    def build(overrides: Sequence[str]) -> DictConfig:
        config = compose_config(overrides)
        OmegaConf.resolve(config)
        validate_config(
            config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
        )
        main_mopd.check_teacher_context_fits(config)
        omega_conf_to_dataclass(config.distillation)
        return config

    return build
