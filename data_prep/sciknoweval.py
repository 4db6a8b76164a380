"""SciKnowEval level-L3 multiple-choice questions of one domain as verl parquet
(`sciknoweval_<domain>_train.parquet`, `sciknoweval_<domain>_test.parquet`,
data_source `science/sciknoweval/<domain>`).

    python -m data_prep.sciknoweval --out DIR [--domain biology|chemistry|physics|material]
        [--local-path FILE_OR_DIR] [--limit N] [--seed S] [--test-fraction F]

SciKnowEval publishes only a test split. As in the MOPD paper, the L3 `mcq-4-choices`/`mcq-2-choices`
questions of the domain are split 90/10 with seed 42, using the permutation of datasets'
`train_test_split(test_size=0.1, seed=42)` so the same questions land on the same side (Biology: 450/50).
Source fields: `question`, `choices{text, label}`, `answerKey`, `type`, `domain`, `details{level, task, subtask}`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from data_prep.common import (
    build_parser,
    convert_all,
    load_hub_records,
    read_local_records,
    sample_records,
    write_outputs,
)
from data_prep.validate import BAD_GROUND_TRUTH, EMPTY_PROMPT, MALFORMED_FIELD, MISSING_ANSWER, RowError

HUB_REPO = "hicai-zju/SciKnowEval"
DOMAINS = ("biology", "chemistry", "physics", "material")
LEVEL = "L3"
MCQ_TYPES = ("mcq-4-choices", "mcq-2-choices")
DEFAULT_SEED = 42
DEFAULT_TEST_FRACTION = 0.1


def system_prompt(labels: Sequence[str]) -> str:
    letters = ", ".join(labels[:-1]) + f" or {labels[-1]}"
    return (
        f"Given a question and {len(labels)} options, select the right answer. Respond in the following "
        "format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n\n"
        f"Inside <answer>, output only the letter of the correct option ({letters}) and nothing else; do not "
        f"restate the option's text. For example, if the answer is {labels[0]}, output:\n"
        f"<answer>\n{labels[0]}\n</answer>"
    )


def _choices(record: Mapping) -> tuple[list[str], list[str]]:
    choices = record.get("choices")
    texts = choices.get("text") if isinstance(choices, Mapping) else None
    labels = choices.get("label") if isinstance(choices, Mapping) else None
    if (
        not isinstance(texts, list)
        or not isinstance(labels, list)
        or len(texts) != len(labels)
        or len(labels) < 2
        or not all(isinstance(label, str) and label for label in labels)
    ):
        raise RowError("choices", MALFORMED_FIELD, "needs matching lists of option texts and labels")
    return [str(text) for text in texts], labels


def convert(split: str, domain: str):
    def convert_record(index: int, record: Mapping) -> dict:
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise RowError("question", EMPTY_PROMPT)
        texts, labels = _choices(record)
        answer = str(record.get("answerKey") or "").strip()
        if not answer:
            raise RowError("answerKey", MISSING_ANSWER)
        if answer not in labels:
            raise RowError("answerKey", BAD_GROUND_TRUTH, f"{answer!r} is not among the options {labels}")
        options = "\n".join(f"{label}: {text}" for label, text in zip(labels, texts))
        details = record.get("details") or {}
        return {
            "data_source": f"science/sciknoweval/{domain}",
            "prompt": [
                {"role": "system", "content": system_prompt(labels)},
                {"role": "user", "content": f"{question.strip()}\n\n{options}\nPlease reason step by step."},
            ],
            "ability": "science",
            "reward_model": {"style": "rule", "ground_truth": answer},
            "extra_info": {
                "index": index,
                "split": split,
                "verifier": "science",
                "domain": domain,
                "type": str(record.get("type") or ""),
                "task": str(details.get("task") or ""),
                "subtask": str(details.get("subtask") or ""),
                "choice_labels": labels,
            },
        }

    return convert_record


def select_pool(records: Sequence[Mapping], domain: str) -> tuple[list[tuple[int, Mapping]], Counter]:
    """The domain's L3 multiple-choice records with their source positions, and why the others were left out."""
    pool, filtered = [], Counter()
    for index, record in enumerate(records):
        details = record.get("details") or {}
        if str(record.get("domain", "")).lower() != domain:
            filtered["another domain"] += 1
        elif details.get("level") != LEVEL:
            filtered[f"level other than {LEVEL}"] += 1
        elif record.get("type") not in MCQ_TYPES:
            filtered["not multiple choice"] += 1
        else:
            pool.append((index, record))
    return pool, filtered


def train_test_positions(count: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """datasets.Dataset.train_test_split(test_size=test_fraction, seed=seed), on positions."""
    permutation = np.random.default_rng(seed).permutation(count).tolist()
    test_count = math.ceil(test_fraction * count)
    return permutation[test_count:], permutation[:test_count]


def _test_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("SciKnowEval L3 multiple choice -> verl parquet", default_seed=DEFAULT_SEED)
    parser.add_argument("--domain", choices=DOMAINS, default="biology")
    parser.add_argument("--test-fraction", type=_test_fraction, default=DEFAULT_TEST_FRACTION)
    args = parser.parse_args(argv)

    records = (
        read_local_records(args.local_path) if args.local_path else load_hub_records(HUB_REPO, split="test")
    )
    pool, filtered = select_pool(records, args.domain)
    pool = sample_records(pool, args.limit, args.seed)
    train_positions, test_positions = train_test_positions(len(pool), args.test_fraction, args.seed)
    stem = f"sciknoweval_{args.domain}"
    outputs = {
        f"{stem}_train": convert_all([pool[i] for i in train_positions], convert("train", args.domain)),
        f"{stem}_test": convert_all([pool[i] for i in test_positions], convert("test", args.domain)),
    }
    return write_outputs(outputs, args.out, filtered=filtered)


if __name__ == "__main__":
    sys.exit(main())
