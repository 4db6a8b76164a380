"""BFCL v4 `simple_python` / `multiple` as multi-turn tool episodes for verl's `tool_agent` loop
(`bfcl_multiturn_{train,test}.parquet`, data_source `tool/bfcl_multiturn/<category>`, and the tool config
`bfcl_multiturn_tools.yaml` for `actor_rollout_ref.rollout.multi_turn.tool_config_path`).

    python -m data_prep.bfcl_multiturn --out DIR [--local-path DIR] [--categories simple_python multiple]
        [--limit N] [--seed S] [--test-size N]

Source and ground truth as in data_prep/bfcl.py. BFCL's functions have no implementations, so an episode
is [the policy's call ; an acknowledgement ; the policy's closing turn]: every function is declared in the
tool config as a `recipe.mopd.recording_tool.RecordingTool`, which accepts any call of its schema and
answers "The call was recorded.", and the reward is the tool verifier scoring the `<tool_call>` blocks
the policy wrote over the whole episode (a repeated or extra call fails, as in BFCL). The chat template
renders the functions from the tool config (not from the prompt, unlike data_prep/bfcl.py); each row
names its own functions in `extra_info.tool_selection`, verl's per-sample filter, so a prompt shows only
its own.

verl's registry holds one tool per name, and BFCL reuses names with different schemas (other parameter
types or descriptions): each name is registered with its most frequent schema, and a row whose function
differs from the registered one is skipped, reported as such (464 of BFCL's 600 rows are kept).

Rows carry no `tools_kwargs`: the recording tool keeps no per-trajectory state, and per-row keys (tool
names) would be unioned into one parquet struct whose absent names read back as null, which verl would
hand to `create` (data_prep.validate rejects such rows).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from data_prep.bfcl import (
    CATEGORIES,
    DISTRIBUTION,
    PACKAGED_DIR,
    _messages,
    gold_calls,
    json_schema,
    read_category,
)
from data_prep.common import build_parser, convert_all, sample_records, write_outputs
from data_prep.packaged import package_path
from data_prep.validate import MALFORMED_FIELD, MISSING_ANSWER, RowError, RowProblem

AGENT_NAME = "tool_agent"
TOOL_CLASS = "recipe.mopd.recording_tool.RecordingTool"
TOOLS_FILE = "bfcl_multiturn_tools.yaml"
STEMS = ("bfcl_multiturn_train", "bfcl_multiturn_test")
SCHEMA_CONFLICT = "function schema differs from the one registered under its name"
SYSTEM_PROMPT = (
    "Fulfil the user's request with the one function call it needs. "
    "Once the call is recorded, reply with one short sentence saying what you requested."
)


def tool_schema(function: Mapping) -> dict:
    """A BFCL function as an OpenAI function tool schema with JSON Schema types."""
    return {"type": "function", "function": json_schema(dict(function))}


def _key(schema: dict) -> str:
    return json.dumps(schema, sort_keys=True)


def register_tools(records: Sequence[Mapping]) -> dict[str, dict]:
    """{function name: schema}, each name's most frequent schema over `records` (first seen on a tie)."""
    variants: dict[str, Counter] = {}
    schemas: dict[str, dict] = {}
    for record in records:
        for function in record.get("function") or []:
            if isinstance(function, Mapping) and isinstance(function.get("name"), str):
                schema = tool_schema(function)
                variants.setdefault(function["name"], Counter())[_key(schema)] += 1
                schemas.setdefault(_key(schema), schema)
    return {name: schemas[counts.most_common(1)[0][0]] for name, counts in variants.items()}


def converter(category: str, answers: Mapping[str, Any], registry: Mapping[str, dict]):
    def convert(index: int, record: Mapping) -> dict:
        source_id = str(record.get("id") or "")
        if source_id not in answers:
            raise RowError("id", MISSING_ANSWER, f"no possible answer for {source_id!r}")
        functions = record.get("function")
        if not isinstance(functions, list) or not functions:
            raise RowError("function", MALFORMED_FIELD, "no function schemas")
        names = []
        for function in functions:
            name = function.get("name") if isinstance(function, Mapping) else None
            if name not in registry:
                raise RowError("function", MALFORMED_FIELD, "a function without a name")
            if _key(tool_schema(function)) != _key(registry[name]):
                raise RowError("function", SCHEMA_CONFLICT, name)
            names.append(name)
        return {
            "data_source": f"tool/bfcl_multiturn/{category}",
            "agent_name": AGENT_NAME,
            "prompt": [{"role": "system", "content": SYSTEM_PROMPT}] + _messages(record.get("question")),
            "ability": "tool",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(gold_calls(answers[source_id]))},
            "extra_info": {
                "index": index,
                "split": "train",
                "verifier": "tool",
                "bfcl_id": source_id,
                "category": category,
                "tool_selection": names,
            },
        }

    return convert


def tool_config(schemas: Sequence[dict]) -> dict:
    """verl's tool config declaring a RecordingTool per schema (see recipe/mopd/recording_tool.py)."""
    return {
        "tools": [
            {"class_name": TOOL_CLASS, "config": {"type": "native", "schema": schema}, "tool_schema": None}
            for schema in schemas
        ]
    }


def split_rows(rows: list[dict], test_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test): a seeded sample of `test_size` rows is the test split, both kept in source order."""
    if test_size < 0:
        raise ValueError(f"--test-size must be >= 0, got {test_size}")
    chosen = set(random.Random(seed).sample(range(len(rows)), min(test_size, len(rows))))
    train = [row for position, row in enumerate(rows) if position not in chosen]
    test = [row for position, row in enumerate(rows) if position in chosen]
    for row in test:
        row["extra_info"]["split"] = "test"
    return train, test


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("BFCL v4 simple_python / multiple (bfcl-eval package) -> verl tool_agent parquet")
    parser.add_argument("--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES))
    parser.add_argument("--test-size", type=int, default=64, help="rows held out as the test split")
    args = parser.parse_args(argv)
    data_dir = package_path(DISTRIBUTION, PACKAGED_DIR) if args.local_path is None else args.local_path
    chosen = {}
    for category in args.categories:
        records, answers = read_category(data_dir, category)
        chosen[category] = (sample_records(records, args.limit, args.seed), answers)
    registry = register_tools([record for records, _ in chosen.values() for record in records])
    candidates: list[dict | RowProblem] = []
    for category, (records, answers) in chosen.items():
        start = len(candidates)
        candidates += convert_all(
            ((start + n, record) for n, record in enumerate(records)), converter(category, answers, registry)
        )
    rows = [candidate for candidate in candidates if isinstance(candidate, dict)]
    problems = [candidate for candidate in candidates if isinstance(candidate, RowProblem)]
    train, test = split_rows(rows, args.test_size, args.seed)
    status = write_outputs({STEMS[0]: train + problems, STEMS[1]: test}, args.out)
    used = dict.fromkeys(name for row in rows for name in row["extra_info"]["tool_selection"])
    tools_path = Path(args.out) / TOOLS_FILE
    tools_path.parent.mkdir(parents=True, exist_ok=True)
    tools_path.write_text(yaml.safe_dump(tool_config([registry[name] for name in used]), sort_keys=False))
    print(f"{tools_path}: {len(used)} recording tools")
    return status


if __name__ == "__main__":
    sys.exit(main())
