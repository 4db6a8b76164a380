"""The installed project resolves to this checkout from anywhere, and verl finds its plugin.

site-packages already holds a `recipe/` namespace (TransferQueue's) and top-level `tests`/`scripts`
packages (verl's wheel); a packaging slip would make `import recipe.mopd` fail or pick the wrong tree only
when started outside the repository, i.e. inside Ray workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[1]

IMPORT_PROBE = """
import json, recipe, recipe.mopd, recipe.mopd.plugin
print(json.dumps({"recipe": recipe.__file__, "mopd": recipe.mopd.__file__, "plugin": recipe.mopd.plugin.__file__}))
"""


def test_site_packages_really_has_the_shadowing_candidates():
    # Without these the import test below would pass vacuously.
    site_packages = Path(sysconfig.get_paths()["purelib"])
    assert (site_packages / "recipe").is_dir()
    assert not (site_packages / "recipe" / "mopd").exists()
    assert (site_packages / "tests").is_dir()
    assert (site_packages / "scripts" / "__init__.py").is_file()


def test_recipe_mopd_resolves_to_this_checkout_from_another_cwd(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    paths = json.loads(completed.stdout.strip().splitlines()[-1])
    for name, path in paths.items():
        assert path is not None, f"{name} imported as a namespace package"
        assert Path(path).resolve().is_relative_to(REPO_ROOT), (name, path)


def test_verl_plugin_entry_point_names_the_recipe_plugin():
    matches = [ep for ep in entry_points(group="verl.plugins") if ep.name == "mopd"]
    assert len(matches) == 1
    assert matches[0].value == "recipe.mopd.plugin"
    assert matches[0].dist is not None and matches[0].dist.name == "mopd"


def test_pyproject_pins_verl_and_leaves_torch_to_the_installer():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(spec) for spec in project["dependencies"]]
    verl = [r for r in requirements if r.name == "verl"]
    assert len(verl) == 1 and str(verl[0].specifier) == "==0.9.1"
    # A torch requirement would let pip swap the CPU wheel for a multi-GB CUDA build.
    assert not [r for r in requirements if r.name == "torch"]
    assert project["entry-points"]["verl.plugins"] == {"mopd": "recipe.mopd.plugin"}
    assert version("verl") == "0.9.1"
