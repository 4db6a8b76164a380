"""Session-wide fixtures shared by every test directory.

`tiny_assets` builds the bundled tiny model and task once (about 40 s on 2 cores) and reuses it across
sessions: `tiny_task.prepare` fingerprints everything that determines the model, so a stale cache is
never picked up. Point MOPD_TEST_CACHE elsewhere to keep the repository clean.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Nothing in the test suite may reach the Hub; set before any transformers import so it takes effect
# here and in every subprocess and Ray worker the tests start.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_assets_cache_dir() -> Path:
    configured = os.environ.get("MOPD_TEST_CACHE")
    return Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "test_assets"


@pytest.fixture(scope="session")
def tiny_assets() -> dict:
    """{"model", "train", "val", "final_loss", "sampled_accuracy_t1"} of the prepared tiny task."""
    from recipe.mopd.cpu.tiny_task import prepare

    root = tiny_assets_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    return prepare(root)


REQUIRE_VLLM_ENV = "MOPD_REQUIRE_VLLM"


def pytest_collection_modifyitems(config, items):
    """`vllm`-marked tests need .venv-vllm. Elsewhere they are skipped with the command that runs them;
    under `scripts/test_vllm.sh` (MOPD_REQUIRE_VLLM=1, as in CI) a missing vLLM fails the run instead."""
    import importlib.util

    vllm_items = [item for item in items if item.get_closest_marker("vllm") is not None]
    if not vllm_items or importlib.util.find_spec("vllm") is not None:
        return
    if os.environ.get(REQUIRE_VLLM_ENV) == "1":
        raise pytest.UsageError(
            f"{REQUIRE_VLLM_ENV}=1 but vLLM is not importable here: run the vLLM layer with "
            "`bash scripts/test_vllm.sh`, which sets up .venv-vllm"
        )
    skip = pytest.mark.skip(reason="vLLM layer: needs .venv-vllm; `bash scripts/test_vllm.sh` runs it (CI does)")
    for item in vllm_items:
        item.add_marker(skip)


REAL_ENV = "MOPD_REAL"


@pytest.fixture(scope="session")
def require_real_package():
    """`require_real_package(dist)` -> its installed version. The real model and problem-set packages
    (scripts/requirements-real.txt) are installed by `scripts/setup.sh`, so a missing one fails the test;
    only under MOPD_REAL=0, which also tells set-up to leave them out, is it skipped."""
    import importlib.metadata

    def require(distribution: str) -> str:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            message = (
                f"{distribution} is not installed: pip install --no-deps --require-hashes "
                "-r scripts/requirements-real.txt (or run scripts/setup.sh)"
            )
            if os.environ.get(REAL_ENV) == "0":
                pytest.skip(f"{REAL_ENV}=0: {message}")
            pytest.fail(message)

    return require
