"""Teacher-signal analysis: rollout files, teacher scoring against a direct forward, and the CLI
(sample, then analyze) on the tiny model."""

import csv
import json
import math

import pandas as pd
import pytest
import torch

from recipe.mopd.eval.analysis import load_rollouts, main, scored_groups, teacher_scores
from recipe.mopd.eval.contexts import VARIANTS
from recipe.mopd.eval.generation import load_hf
from recipe.mopd.eval.signal_table import SAMPLE_SETS
from recipe.mopd.signal_metrics import METRICS

PROMPT = [{"role": "user", "content": "Add 1+1."}]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_load_rollouts_groups_jsonl_and_parquet_alike(tmp_path):
    records = [
        {"uid": "a", "prompt": PROMPT, "response": "x", "response_ids": [5, 6], "score": 1.0},
        {"uid": "b", "prompt": PROMPT, "response": "y", "score": 0},
        {"uid": "a", "prompt": PROMPT, "response": "z", "response_ids": [7], "score": 0.0},
    ]
    write_jsonl(tmp_path / "r.jsonl", records)
    pd.DataFrame(records).to_parquet(tmp_path / "r.parquet")
    for name in ("r.jsonl", "r.parquet"):
        groups = load_rollouts(tmp_path / name)
        assert list(groups) == ["a", "b"]
        assert [r.response for r in groups["a"]] == ["x", "z"]
        assert groups["a"][0].response_ids == [5, 6] and groups["b"][0].response_ids is None
        assert groups["a"][1].score == 0.0 and groups["a"][0].prompt == PROMPT


def test_load_rollouts_names_missing_fields(tmp_path):
    write_jsonl(tmp_path / "r.jsonl", [{"uid": "a", "prompt": PROMPT, "response": "x"}])
    with pytest.raises(ValueError, match=r"record 1: missing \['score'\]"):
        load_rollouts(tmp_path / "r.jsonl")


@pytest.mark.parametrize("sliding_window", [False, True], ids=["shared_prefix", "per_sequence"])
def test_teacher_scores_equal_a_direct_forward(tiny_assets, sliding_window):
    tokenizer, model = load_hf(tiny_assets["model"])
    if sliding_window:  # what sends a teacher such as Gemma 3 to the per-sequence forward
        model.config.use_sliding_window, model.config.sliding_window = True, 4096
    question = tokenizer.encode("<|im_start|>user\nAdd 3+4.<|im_end|>\n<|im_start|>assistant\n")
    sequences = [
        (question, [64, 264, 95, 29, 97, 2]),
        (tokenizer.encode("a much longer context that pads the other row of the batch " * 3), [30, 31]),
        (question, [40]),
        (tokenizer.encode("x"), [40]),
        (question, [95, 29]),
    ]
    got = teacher_scores(model, sequences, batch_size=3)
    for (context, response), score in zip(sequences, got):
        ids = torch.tensor([context + response])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        expected = [logprobs[len(context) - 1 + j, t].item() for j, t in enumerate(response)]
        assert score == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_teacher_scores_reject_an_empty_response(tiny_assets):
    _, model = load_hf(tiny_assets["model"])
    with pytest.raises(ValueError, match="context and a response"):
        teacher_scores(model, [([1, 2], [])], batch_size=2)


def test_scored_groups_keeps_only_effective_rollouts():
    records = [
        {"variant": "1S", "uid": "g", "index": 0, "effective": False, "teacher_score": -2.0, "reward": 0.0},
        {"variant": "1S", "uid": "g", "index": 1, "effective": True, "teacher_score": -1.0, "reward": 1.0},
        {"variant": "1S", "uid": "h", "index": 0, "effective": False, "teacher_score": -3.0, "reward": 0.0},
    ]
    groups = scored_groups(records)["1S"]
    assert [(g.uid, g.teacher_scores, g.rewards) for g in groups] == [("g", [-1.0], [1.0]), ("h", [], [])]
    # the matched set pairs rollouts across variants by their position in the group
    assert groups[0].indices == [1]


def test_sample_then_analyze_on_the_tiny_model(tiny_assets, tmp_path):
    rollouts = tmp_path / "rollouts.jsonl"
    model, val = tiny_assets["model"], tiny_assets["val"]
    main(f"sample --model {model} --data {val} --out {rollouts} --n 6 --limit 12 --max-new-tokens 16".split())
    records = [json.loads(line) for line in rollouts.read_text().splitlines()]
    assert len(records) == 72 and len({r["uid"] for r in records}) == 12
    assert {r["score"] for r in records} == {0.0, 1.0}  # partial accuracy: groups can mix

    out = tmp_path / "analysis"
    table = main(f"--teacher {model} --rollouts {rollouts} --out {out} --num-resamples 200".split())
    assert len(table) == len(VARIANTS) * len(SAMPLE_SETS) * len(METRICS)
    with open(out / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == len(table)
    with open(out / "scores.csv") as f:
        scores = list(csv.DictReader(f))
    mixed = {
        uid
        for uid in {r["uid"] for r in records}
        if len({r["score"] for r in records if r["uid"] == uid}) > 1
    }
    assert (
        mixed and {s["uid"] for s in scores} == mixed
    )  # a group with one reward everywhere defines no metric
    assert len(scores) == 6 * len(mixed) * len(VARIANTS)
    assert all(float(s["teacher_score"]) < 0 and math.isfinite(float(s["teacher_score"])) for s in scores)
    # the bare question is always what "none" asks for; peers make every other context longer
    none = [s for s in scores if s["variant"] == "none"]
    assert all(s["effective"] == "True" for s in none)
    with_peers = [s for s in scores if s["variant"] == "2S1F" and s["effective"] == "True"]
    assert with_peers and all(int(s["context_tokens"]) > int(none[0]["context_tokens"]) for s in with_peers)
    none_rows = [r for r in table if r["variant"] == "none" and r["mean"] is not None]
    assert none_rows and all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in none_rows)
    with open(out / "differences.csv") as f:
        differences = list(csv.DictReader(f))
    assert len(differences) == (len(VARIANTS) - 1) * len(METRICS)
    assert {d["reference"] for d in differences} == {"none"}
    # every variant's matched row counts the same groups: that is what makes them comparable
    matched_counts = {
        r["num_groups"] for r in table if r["sample_set"] == "matched" and r["metric"] == "auroc"
    }
    assert len(matched_counts) == 1
    tables = (out / "tables.md").read_text()
    none_auroc = next(
        r for r in table if r["sample_set"] == "both_present" and r["variant"] == "none" and r["metric"] == "auroc"
    )
    assert tables.count("| none |") == 2 and tables.count("| 2S1F |") == 3  # 2S1F also has a difference row
    assert (
        f"| none | {none_auroc['mean']:.3f} [{none_auroc['ci_low']:.3f}, {none_auroc['ci_high']:.3f}]"
        in tables
    )
    for name in [*METRICS, "teacher_signal", "differences"]:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 150_000
