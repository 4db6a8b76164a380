"""Entry point of the `verl.plugins` group: verl imports this in every process (driver, TaskRunner,
trainer workers, agent-loop workers), so registrations made here exist wherever verl looks them up.

verl swallows plugin import errors at debug level; `recipe.mopd.main_mopd` therefore imports this module
explicitly as well, so a broken registration fails loudly at start-up.
"""

from recipe.mopd.cpu import activate, cpu_platform_requested
from recipe.mopd.cpu.hf_rollout import register_hf_rollout

register_hf_rollout()
if cpu_platform_requested():
    activate()

# Imported for their registrations: the mopd_* distillation losses and the mopd_sync trainer mode.
import recipe.mopd.losses  # noqa: E402, F401
import recipe.mopd.trainer  # noqa: E402, F401
