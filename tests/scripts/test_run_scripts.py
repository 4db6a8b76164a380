"""The GPU run scripts are checked on CPU: their --dry-run command is composed into the full hydra config
(verl's ppo_trainer + our delta + the script's overrides) and put through verl's own `validate_config`
and the recipe's preflight checks that do not need the files to exist."""

import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import recipe.mopd.main_mopd as main_mopd
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config

REPO = Path(__file__).resolve().parents[2]
RUN_SCRIPTS = sorted((REPO / "scripts").glob("run_*.sh"))


def dry_run_overrides(script: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        ["bash", str(script), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": "/tmp", **env},
    ).stdout
    argv = shlex.split(out)
    assert argv[:3] == ["python3", "-m", "recipe.mopd.main_mopd"]
    return argv[3:]


@pytest.mark.parametrize("script", RUN_SCRIPTS, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["contrastive", "positive", "none"])
def test_gpu_run_script_config_passes_verl_validation(script, mode):
    overrides = dry_run_overrides(script, {"MODE": mode, "PATH": "/usr/bin:/bin"})
    with initialize_config_dir(config_dir=str(REPO / "recipe/mopd/config"), version_base=None):
        config = compose(config_name="mopd_trainer", overrides=overrides)
    OmegaConf.resolve(config)
    assert config.mopd.mode == mode
    assert config.actor_rollout_ref.rollout.name == "vllm"
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    main_mopd.check_teacher_context_fits(config)


def test_dry_run_forwards_extra_overrides():
    extra = subprocess.run(
        ["bash", str(RUN_SCRIPTS[0]), "--dry-run", "mopd.selection=shortest"],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert shlex.split(extra)[-1] == "mopd.selection=shortest"


def test_run_scripts_pass_shellcheck():
    shellcheck = REPO / ".venv/bin/shellcheck"
    binary = str(shellcheck) if shellcheck.exists() else "shellcheck"
    scripts = [str(p) for p in (REPO / "scripts").glob("*.sh")] + [str(REPO / ".ci/run")]
    completed = subprocess.run([binary, *scripts], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout
