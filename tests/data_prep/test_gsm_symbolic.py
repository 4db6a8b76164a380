"""gsm_symbolic: instance files (the checked-in fixture) and the generators of the installed reasoning-gym
package, which must match reasoning-gym's own GSMSymbolicDataset."""

import importlib
import re
import sys
import types
from pathlib import Path

import pytest

from data_prep import gsm_symbolic, validate
from data_prep.packaged import package_path
from verifiers import verl_reward

WORKING_TEMPLATE_COUNT = 85


def score(row, response: str) -> float:
    return verl_reward.compute_score(
        row["data_source"], response, row["reward_model"]["ground_truth"], extra_info=row["extra_info"]
    )["score"]


@pytest.fixture(scope="module")
def package_dir(require_real_package) -> Path:
    require_real_package("reasoning-gym")
    return package_path("reasoning-gym", "reasoning_gym")


@pytest.fixture(scope="module")
def generated(package_dir, tmp_path_factory, run_cli, parquet_rows):
    out = tmp_path_factory.mktemp("gsm_symbolic")
    run = run_cli(gsm_symbolic.main, ["--out", str(out), "--train-size", "120", "--test-size", "60"])
    assert run.exit_code == 0, run.output
    return out, {split: parquet_rows(out / f"gsm_symbolic_{split}.parquet") for split in ("train", "test")}


def test_instance_files_become_math_rows(fixtures_dir, tmp_path, run_cli, parquet_rows):
    run = run_cli(
        gsm_symbolic.main, ["--out", str(tmp_path), "--local-path", str(fixtures_dir / "gsm_symbolic")]
    )

    assert run.exit_code == 0
    assert "gsm_symbolic_train.parquet: written 4, skipped 1" in run.output
    assert (
        "row 4 [answer]: ground truth not in verifier format ('about twelve' is not a number)" in run.output
    )
    train, test = (parquet_rows(tmp_path / f"gsm_symbolic_{split}.parquet") for split in ("train", "test"))
    assert [row["reward_model"]["ground_truth"] for row in train] == ["1687.5", "57", "48", "96"]
    assert [row["reward_model"]["ground_truth"] for row in test] == ["1458", "39300"]
    assert train[0]["extra_info"]["template"] == 27 and train[0]["extra_info"]["instance_seed"] == 7
    # reasoning-gym's own entry shape: the worked solution sits in metadata, the template is unknown.
    assert test[1]["extra_info"]["template"] == -1
    assert test[1]["extra_info"]["answer_cot"].endswith("#### 39300")
    assert validate.main([str(tmp_path / "gsm_symbolic_train.parquet")]) == 0


def test_gold_answers_pass_the_math_verifier_and_wrong_ones_fail(
    fixtures_dir, tmp_path, run_cli, parquet_rows
):
    run_cli(gsm_symbolic.main, ["--out", str(tmp_path), "--local-path", str(fixtures_dir / "gsm_symbolic")])
    for row in parquet_rows(tmp_path / "gsm_symbolic_train.parquet"):
        gold = row["reward_model"]["ground_truth"]
        assert score(row, f"So the total is \\boxed{{{gold}}}.") == 1.0
        assert score(row, f"So the total is \\boxed{{{int(float(gold)) + 1}}}.") == 0.0


def test_only_working_templates_are_read(package_dir):
    templates = gsm_symbolic.tasks_ok(package_dir)

    assert len(templates) == WORKING_TEMPLATE_COUNT
    assert not {32, 35, 37, 61, 63, 65, 74, 76, 77, 79, 86, 87, 90, 97, 98} & set(templates)
    assert set(templates) <= set(gsm_symbolic.load_generators(package_dir))


def test_generated_splits_are_valid_numeric_and_disjoint(generated):
    out, rows = generated

    assert validate.main([str(path) for path in sorted(out.glob("*.parquet"))]) == 0
    assert len(rows["train"]) == 120 and 0 < len(rows["test"]) <= 60
    templates = {row["extra_info"]["template"] for split in rows.values() for row in split}
    assert templates <= set(range(100)) - {32, 35, 37, 61, 63, 65, 74, 76, 77, 79, 86, 87, 90, 97, 98}
    assert len(templates) > 40
    train_questions = {row["prompt"][-1]["content"] for row in rows["train"]}
    assert not train_questions & {row["prompt"][-1]["content"] for row in rows["test"]}
    for split in rows.values():
        for row in split:
            gold = row["reward_model"]["ground_truth"]
            # The gold answer is the number the worked solution ends with ("#### N").
            final = re.search(r"####\s*(\S+)\s*$", row["extra_info"]["answer_cot"])[1]
            assert float(final.replace(",", "")) == float(gold)
            assert score(row, f"The answer is \\boxed{{{gold}}}.") == 1.0


def test_same_seed_same_rows_and_local_package_path(package_dir, generated, tmp_path, run_cli, parquet_rows):
    _, rows = generated
    run = run_cli(
        gsm_symbolic.main,
        [
            "--out",
            str(tmp_path),
            "--local-path",
            str(package_dir.parent),
            "--train-size",
            "120",
            "--test-size",
            "60",
        ],
    )

    assert run.exit_code == 0
    assert parquet_rows(tmp_path / "gsm_symbolic_train.parquet") == rows["train"]
    assert parquet_rows(tmp_path / "gsm_symbolic_test.parquet") == rows["test"]


def _reasoning_gym_dataset(package_dir: Path, seed: int, size: int) -> tuple[list[dict], list[int]]:
    """reasoning-gym's own GSMSymbolicDataset loaded by path, its `reasoning_gym.factory` import served by
    a stub (the real one pulls in the whole package); sys.modules is restored afterwards."""
    factory_stub = types.ModuleType("reasoning_gym.factory")

    class ProceduralDatasetStub:
        def __init__(self, config, seed, size):
            self.config, self.seed, self.size = config, seed, size

    factory_stub.ProceduralDataset = ProceduralDatasetStub
    factory_stub.register_dataset = lambda *args: None
    saved = dict(sys.modules)
    try:
        for name, path in (
            ("reasoning_gym", package_dir),
            ("reasoning_gym.arithmetic", package_dir / "arithmetic"),
            ("reasoning_gym.arithmetic.gsm_symbolic", package_dir / "arithmetic" / "gsm_symbolic"),
        ):
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = [str(path)]
        sys.modules["reasoning_gym.factory"] = factory_stub
        module = importlib.import_module("reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic")
        dataset = module.GSMSymbolicDataset(module.GSMSymbolicDatasetConfig(seed=seed, size=size))
        return [dataset[index] for index in range(size)], dataset.task_indices
    finally:
        sys.modules.clear()
        sys.modules.update(saved)


def test_instances_match_reasoning_gyms_own_dataset_class(package_dir):
    theirs, templates = _reasoning_gym_dataset(package_dir, seed=11, size=30)

    ours = gsm_symbolic.generate(package_dir, seed=11, size=30)

    assert [instance["template"] for instance in ours] == templates
    assert [(i["question"], i["answer"], i["answer_cot"]) for i in ours] == [
        (t["question"], t["answer"], t["metadata"]["answer_cot"]) for t in theirs
    ]


def test_one_shot_prompt_holds_a_worked_instance_of_the_same_template(
    package_dir, generated, tmp_path, run_cli, parquet_rows
):
    _, plain = generated
    run = run_cli(
        gsm_symbolic.main,
        ["--out", str(tmp_path), "--train-size", "120", "--test-size", "60", "--prompt-format", "one_shot"],
    )

    assert run.exit_code == 0, run.output
    path = tmp_path / "gsm_symbolic_train.parquet"
    assert validate.main([str(path)]) == 0
    generators = gsm_symbolic.load_generators(package_dir)
    for row, plain_row in zip(parquet_rows(path), plain["train"], strict=True):
        info = row["extra_info"]
        worked = generators[info["template"]](
            gsm_symbolic.Random(info["instance_seed"] + gsm_symbolic.EXAMPLE_SEED_OFFSET),
            gsm_symbolic.DIFFICULTY,
        )
        example, solution, question = row["prompt"]
        assert row["reward_model"] == plain_row["reward_model"]
        assert question == plain_row["prompt"][0]
        assert [example["role"], solution["role"]] == ["user", "assistant"]
        assert example["content"].startswith(worked["question"])
        assert solution["content"].endswith(f"The final answer is \\boxed{{{worked['answer']}}}.")
        assert "####" not in solution["content"]


def test_one_shot_choice_lists_the_gold_answer_under_its_letter(
    package_dir, generated, tmp_path, run_cli, parquet_rows
):
    _, plain = generated
    run = run_cli(
        gsm_symbolic.main,
        [
            "--out",
            str(tmp_path),
            "--train-size",
            "120",
            "--test-size",
            "0",
            "--prompt-format",
            "one_shot_choice",
        ],
    )

    assert run.exit_code == 0, run.output
    path = tmp_path / "gsm_symbolic_train.parquet"
    assert validate.main([str(path)]) == 0
    rows = parquet_rows(path)
    generators = gsm_symbolic.load_generators(package_dir)
    letters = set()
    for row, plain_row in zip(rows, plain["train"], strict=True):
        example, solution, question = row["prompt"]
        options = dict(re.findall(r"^([A-D]): (\S+)$", question["content"], re.MULTILINE))
        gold = row["reward_model"]["ground_truth"]
        letters.add(gold)
        assert row["data_source"] == gsm_symbolic.CHOICE_DATA_SOURCE
        assert len(set(options.values())) == 4 and options[gold] == plain_row["reward_model"]["ground_truth"]
        example_options = dict(re.findall(r"^([A-D]): (\S+)$", example["content"], re.MULTILINE))
        example_letter = re.search(r"The answer is \(([A-D])\)\.$", solution["content"]).group(1)
        worked = generators[row["extra_info"]["template"]](
            gsm_symbolic.Random(row["extra_info"]["instance_seed"] + gsm_symbolic.EXAMPLE_SEED_OFFSET),
            gsm_symbolic.DIFFICULTY,
        )
        assert example_options[example_letter] == worked["answer"] and "boxed" not in solution["content"]
        assert score(row, f"So it is {options[gold]}.\nThe answer is ({gold}).") == 1.0
        wrong = next(letter for letter in options if letter != gold)
        assert score(row, f"The answer is ({wrong}).") == 0.0
    assert letters == set(gsm_symbolic.CHOICE_LABELS)  # the gold is not always in one place


def test_one_shot_needs_the_generators(fixtures_dir, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--local-path", str(fixtures_dir / "gsm_symbolic")]
    with pytest.raises(SystemExit) as exit_info:
        gsm_symbolic.main([*argv, "--prompt-format", "one_shot"])

    assert exit_info.value.code == 2
    assert "one_shot draws its worked examples from the generators" in capsys.readouterr().err


@pytest.mark.parametrize("choice", [False, True])
def test_a_record_without_a_question_is_a_row_error(choice):
    record = {"question": "  ", "answer": "12", **({"choice_answer": "B"} if choice else {})}
    with pytest.raises(validate.RowError, match="empty prompt"):
        gsm_symbolic.converter("train")(0, record)
