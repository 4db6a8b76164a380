"""Session-wide fixtures shared by every test directory.

`tiny_assets` builds the bundled tiny model and task once (about 20 s on 2 cores) and reuses it across
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
