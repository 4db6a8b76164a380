"""Evaluation: summary arithmetic, prompt rendering, and a CPU run of the CLI on the tiny model."""

import csv
import json

import pytest

from recipe.mopd.cpu import tiny_task
from recipe.mopd.eval.evaluate import ProblemCounts, main, summarize
from recipe.mopd.eval.generation import SamplingConfig, chat_prompt_ids, generate_hf, load_problems


def test_summarize_per_source_and_overall():
    counts = [
        ProblemCounts(0, "math/a", 4, 4),
        ProblemCounts(1, "math/a", 4, 0),
        ProblemCounts(2, "math/b", 4, 1),
    ]
    summary = summarize(counts, 4)
    assert list(summary) == ["math/a", "math/b", "overall"]
    assert summary["math/a"] == {
        "num_problems": 2,
        "mean@4": 0.5,
        "pass@1": 0.5,
        "pass@2": 0.5,
        "pass@4": 0.5,
    }
    assert summary["math/b"]["mean@4"] == 0.25
    assert summary["math/b"]["pass@2"] == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert summary["math/b"]["pass@4"] == 1.0
    # overall averages over problems, not over sources
    assert summary["overall"]["num_problems"] == 3
    assert summary["overall"]["mean@4"] == pytest.approx(1.25 / 3)
    assert summary["overall"]["pass@4"] == pytest.approx(2 / 3)


def test_load_problems_gives_plain_python_rows(tiny_assets):
    problems = load_problems([tiny_assets["val"]], limit=3)
    assert [p.row for p in problems] == [0, 1, 2]
    first = problems[0]
    assert first.data_source == tiny_task.DATA_SOURCE
    assert isinstance(first.prompt, list) and isinstance(first.prompt[0], dict)
    assert first.prompt[0]["role"] == "user"
    assert isinstance(first.extra_info, dict) and first.extra_info["verifier"] == "math"
    assert isinstance(first.ground_truth, str)


def test_chat_template_kwargs_reach_the_template(tiny_assets):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])
    messages = [{"role": "user", "content": "Add 1+2."}]
    plain = tokenizer.decode(chat_prompt_ids(tokenizer, messages))
    no_think = tokenizer.decode(chat_prompt_ids(tokenizer, messages, {"enable_thinking": False}))
    assert plain.endswith("<|im_start|>assistant\n")
    assert no_think == plain + "<think>\n\n</think>\n\n"


def test_hf_generation_is_seeded_and_groups_k_samples(tiny_assets):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])
    prompts = [chat_prompt_ids(tokenizer, p.prompt) for p in load_problems([tiny_assets["val"]], limit=3)]
    sampling = SamplingConfig(k=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=5)
    first = generate_hf(tiny_assets["model"], prompts, sampling, batch_size=4)
    again = generate_hf(tiny_assets["model"], prompts, sampling, batch_size=4)
    assert [len(g) for g in first] == [3, 3, 3]
    assert [[s.token_ids for s in g] for g in first] == [[s.token_ids for s in g] for g in again]
    assert all(1 <= len(s.token_ids) <= 16 for g in first for s in g)


def test_cli_reports_mean_and_pass_at_k_on_the_tiny_model(tiny_assets, tmp_path):
    model, val = tiny_assets["model"], tiny_assets["val"]
    sampling = "--k 4 --limit 12 --max-new-tokens 16 --temperature 1.0 --top-p 1.0"
    report = main(f"--model {model} --data {val} --out {tmp_path} {sampling}".split())
    problems = report["problems"]
    assert len(problems) == 12 and all(p["num_samples"] == 4 for p in problems)
    overall = report["summary"]["overall"]
    assert overall == report["summary"][tiny_task.DATA_SOURCE]
    assert overall["mean@4"] == pytest.approx(sum(p["num_correct"] / 4 for p in problems) / 12)
    assert overall["pass@1"] == pytest.approx(overall["mean@4"])
    assert overall["pass@4"] == pytest.approx(sum(p["num_correct"] > 0 for p in problems) / 12)
    # the tiny model is partially accurate at temperature 1 (about 0.2), so neither bound is hit
    assert 0.0 < overall["mean@4"] < overall["pass@4"] <= 1.0

    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 48
    truths = {p.row: p.ground_truth for p in load_problems([tiny_assets["val"]], limit=12)}
    for sample in samples:
        # the project's math verifier agrees with the task's own rule checker
        expected = tiny_task.compute_score(tiny_task.DATA_SOURCE, sample["response"], truths[sample["row"]])
        assert sample["acc"] == expected["acc"]
    for problem in problems:
        assert problem["num_correct"] == sum(s["acc"] for s in samples if s["row"] == problem["row"])

    with open(tmp_path / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["data_source"] for r in rows] == [tiny_task.DATA_SOURCE, "overall"]
    assert float(rows[-1]["pass@4"]) == pytest.approx(overall["pass@4"])
    with open(tmp_path / "problems.csv") as f:
        assert len(list(csv.DictReader(f))) == 12
    assert json.loads((tmp_path / "report.json").read_text())["config"]["k"] == 4


def test_cli_rejects_non_object_chat_template_kwargs(tiny_assets, tmp_path):
    model, val = tiny_assets["model"], tiny_assets["val"]
    with pytest.raises(SystemExit):
        main(f"--model {model} --data {val} --out {tmp_path} --chat-template-kwargs [1]".split())
