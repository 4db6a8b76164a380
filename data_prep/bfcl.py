"""BFCL v4 single-call questions (`simple_python`, `multiple`) from the `bfcl-eval` package as verl parquet
(`bfcl_<category>_test.parquet`, data_source `tool/bfcl/<category>`).

    python -m data_prep.bfcl --out DIR [--local-path DIR] [--categories simple_python multiple]
        [--limit N] [--seed S]

Source: `bfcl_eval/data/` of the installed bfcl-eval 2026.3.23 (Apache-2.0), found through its metadata
and never imported (install with `pip install --no-deps --require-hashes -r scripts/requirements-real.txt`),
or --local-path, a directory with the same layout: `BFCL_v4_<category>.json` (JSON Lines: `id`,
`question` as a list of turns of chat messages, `function` as a list of schemas) and
`possible_answer/BFCL_v4_<category>.json` (`id`, `ground_truth`: `[{function: {argument: [accepted
values]}}]`, "" meaning the argument may be left out). `simple_python` offers one function, `multiple`
two to four; both expect exactly one call.

The functions go into a system prompt (as JSON Schema: BFCL's Python type names dict/float/tuple/any
become object/number/array/string, BFCL's own convention for function-calling APIs) that asks for
Hermes-style `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` replies. The ground truth keeps
BFCL's accepted values as the tool verifier's `allowed`, so every answer BFCL accepts passes;
`arguments` is the first accepted combination. Strings are compared with the tool verifier's
normalisation (case-sensitive, whitespace-collapsed), not BFCL's looser punctuation-stripping one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_prep.common import build_parser, convert_all, iter_records_file, sample_records, write_outputs
from data_prep.packaged import package_path
from data_prep.validate import BAD_GROUND_TRUTH, EMPTY_PROMPT, MALFORMED_FIELD, MISSING_ANSWER, RowError

DISTRIBUTION = "bfcl-eval"
PACKAGED_DIR = "bfcl_eval/data"
CATEGORIES = ("simple_python", "multiple")
FILE_PATTERN = "BFCL_v4_{category}.json"
ANSWER_DIR = "possible_answer"
SCHEMA_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
SYSTEM_PROMPT = (
    "You can call the functions described below. Each is given as a JSON Schema.\n<tools>\n{tools}\n</tools>\n\n"
    "Answer the user's request with the one function call that fulfils it, written as\n"
    '<tool_call>\n{{"name": <function name>, "arguments": <JSON object of argument values>}}\n</tool_call>\n'
    "Give only arguments the request determines, with values of the types the schema names."
)


def json_schema(node: Any) -> Any:
    """A BFCL function description with its Python type names turned into JSON Schema ones."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items()}
    if isinstance(node.get("type"), str):
        converted["type"] = SCHEMA_TYPES.get(node["type"], node["type"])
    return converted


def _example_value(accepted: Any) -> Any:
    """One concrete value for an accepted value (a nested dict holds accepted-value lists itself)."""
    if isinstance(accepted, dict) and all(isinstance(values, list) for values in accepted.values()):
        return _example_arguments(accepted)
    if isinstance(accepted, list) and any(isinstance(item, dict) for item in accepted):
        return [_example_value(item) for item in accepted]
    return accepted


def _example_arguments(allowed: Mapping[str, list]) -> dict:
    arguments = {}
    for name, accepted in allowed.items():
        present = [value for value in accepted if value != ""]
        if present:
            arguments[name] = _example_value(present[0])
    return arguments


def gold_calls(possible_answer: Any) -> list[dict]:
    """BFCL's `[{function: {argument: [accepted]}}]` as the tool verifier's calls with `allowed`."""
    if not isinstance(possible_answer, list) or not possible_answer:
        raise RowError("ground_truth", MISSING_ANSWER)
    calls = []
    for position, call in enumerate(possible_answer):
        if not isinstance(call, dict) or len(call) != 1:
            raise RowError(
                "ground_truth", BAD_GROUND_TRUTH, f"call {position} is not {{function: arguments}}"
            )
        ((name, allowed),) = call.items()
        if not isinstance(allowed, dict) or not all(
            isinstance(values, list) and values for values in allowed.values()
        ):
            raise RowError("ground_truth", BAD_GROUND_TRUTH, f"call {position} has no accepted-value lists")
        calls.append({"name": name, "arguments": _example_arguments(allowed), "allowed": allowed})
    return calls


def _messages(question: Any) -> list[dict]:
    if not isinstance(question, list) or len(question) != 1 or not isinstance(question[0], list):
        raise RowError("question", MALFORMED_FIELD, "expected exactly one turn of chat messages")
    messages = question[0]
    if not messages or not all(isinstance(message, dict) for message in messages):
        raise RowError("question", EMPTY_PROMPT)
    return [{"role": message.get("role"), "content": message.get("content")} for message in messages]


def converter(category: str, answers: Mapping[str, Any]):
    def convert(index: int, record: Mapping) -> dict:
        source_id = str(record.get("id") or "")
        if source_id not in answers:
            raise RowError("id", MISSING_ANSWER, f"no possible answer for {source_id!r}")
        functions = record.get("function")
        if not isinstance(functions, list) or not functions:
            raise RowError("function", MALFORMED_FIELD, "no function schemas")
        tools = json.dumps(json_schema(functions), ensure_ascii=False)
        return {
            "data_source": f"tool/bfcl/{category}",
            "prompt": [{"role": "system", "content": SYSTEM_PROMPT.format(tools=tools)}]
            + _messages(record.get("question")),
            "ability": "tool",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(gold_calls(answers[source_id]))},
            "extra_info": {
                "index": index,
                "split": "test",
                "verifier": "tool",
                "bfcl_id": source_id,
                "category": category,
                "tools": tools,
            },
        }

    return convert


def read_category(data_dir: Path, category: str) -> tuple[list[dict], dict[str, Any]]:
    """(question records, {id: possible answer}) of one category."""
    file_name = FILE_PATTERN.format(category=category)
    questions_path, answers_path = data_dir / file_name, data_dir / ANSWER_DIR / file_name
    for path in (questions_path, answers_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (expected BFCL's data layout under {data_dir})")
    answers = {
        str(record.get("id")): record.get("ground_truth") for record in iter_records_file(answers_path)
    }
    return list(iter_records_file(questions_path)), answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("BFCL v4 simple_python / multiple (bfcl-eval package) -> verl parquet")
    parser.add_argument("--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES))
    args = parser.parse_args(argv)
    data_dir = package_path(DISTRIBUTION, PACKAGED_DIR) if args.local_path is None else args.local_path
    outputs = {}
    for category in args.categories:
        records, answers = read_category(data_dir, category)
        chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
        outputs[f"bfcl_{category}_test"] = convert_all(chosen, converter(category, answers))
    return write_outputs(outputs, args.out)


if __name__ == "__main__":
    sys.exit(main())
