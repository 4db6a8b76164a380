"""ToolAlpaca-derived tool-use instances ("ToolUse" of the SDPO/MOPD papers) as verl parquet
(`toolalpaca_train.parquet`, `toolalpaca_test.parquet`, data_source `tool/toolalpaca`).

    python -m data_prep.toolalpaca --out DIR [--local-path FILE_OR_DIR] [--limit N] [--seed S]
        [--agent-name single_turn_agent|tool_agent]

Source rows are SDPO's `datasets/tooluse/{train,test}.json` (JSON Lines despite the suffix): `prompt` holds
the API documentation, the ReAct format instructions and the question; `answer` is a JSON string
`[{"Action": name, "Action_Input": "<JSON object>"}, ...]`. A file whose name contains "test" feeds the
test split, any other the train split. Without --local-path the two files are read from SDPO's
repository at a pinned commit, there being no hub copy.

The ground truth is the tool verifier's `[{"name", "arguments"}]`. Each row also carries what verl's tool
agent loop reads: a top-level `agent_name` and `extra_info.tools_kwargs`, keyed by one simulated-API tool
(`TOOL_NAME`) whose create_kwargs name the API and the gold calls. The paper grades a single completion,
hence the default `single_turn_agent`; `--agent-name tool_agent` prepares multi-turn rollouts.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from data_prep.common import (
    build_parser,
    convert_all,
    iter_records_file,
    load_hub_records,
    local_files,
    sample_records,
    write_outputs,
)
from data_prep.validate import BAD_GROUND_TRUTH, EMPTY_PROMPT, MISSING_ANSWER, RowError

DATA_SOURCE = "tool/toolalpaca"
SDPO_COMMIT = "0e6d5106abe69f578c63bf38a9394e22905c8773"
SDPO_FILE_URL = (
    f"https://raw.githubusercontent.com/lasgroup/SDPO/{SDPO_COMMIT}/datasets/tooluse/{{split}}.json"
)
SPLITS = ("train", "test")
AGENT_NAMES = ("single_turn_agent", "tool_agent")
# The one tool a multi-turn setup registers: it simulates whichever API the row documents.
TOOL_NAME = "toolalpaca_api"
API_NAME = re.compile(r"^Name:\s*(.+?)\s*$", re.MULTILINE)


def split_of(path: Path) -> str:
    return "test" if "test" in path.stem.lower() else "train"


def _arguments(raw, step: int) -> dict:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise RowError("answer", BAD_GROUND_TRUTH, f"Action_Input of step {step} is not JSON") from None
    if not isinstance(raw, dict):
        raise RowError("answer", BAD_GROUND_TRUTH, f"Action_Input of step {step} is not a JSON object")
    return raw


def gold_calls(answer) -> list[dict]:
    """SDPO's `[{"Action", "Action_Input"}]` answer as the verifier's `[{"name", "arguments"}]`."""
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise RowError("answer", MISSING_ANSWER)
    try:
        steps = json.loads(answer) if isinstance(answer, str) else answer
    except json.JSONDecodeError:
        raise RowError("answer", BAD_GROUND_TRUTH, "not JSON") from None
    if not isinstance(steps, list) or not steps:
        raise RowError("answer", MISSING_ANSWER, "no gold action")
    calls = []
    for step, action in enumerate(steps):
        name = action.get("Action") if isinstance(action, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise RowError("answer", BAD_GROUND_TRUTH, f"step {step} names no action")
        calls.append({"name": name.strip(), "arguments": _arguments(action.get("Action_Input"), step)})
    return calls


def converter(split: str, agent_name: str):
    def convert(index: int, record: Mapping) -> dict:
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RowError("prompt", EMPTY_PROMPT)
        ground_truth = json.dumps(gold_calls(record.get("answer")), ensure_ascii=False)
        api_match = API_NAME.search(prompt)
        api_name = api_match[1] if api_match else ""
        source_id = record.get("idx")
        return {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": prompt.strip()}],
            "ability": "tool",
            "reward_model": {"style": "rule", "ground_truth": ground_truth},
            "agent_name": agent_name,
            "extra_info": {
                "index": index,
                "split": split,
                "verifier": "tool",
                "source_id": "" if source_id is None else str(source_id),
                "api_name": api_name,
                "need_tools_kwargs": agent_name == "tool_agent",
                "tools_kwargs": {
                    TOOL_NAME: {"create_kwargs": {"api_name": api_name, "ground_truth": ground_truth}}
                },
            },
        }

    return convert


def read_splits(local_path: Path | None) -> dict[str, list[dict]]:
    if local_path is None:
        return {
            split: load_hub_records("json", split="train", data_files=SDPO_FILE_URL.format(split=split))
            for split in SPLITS
        }
    records: dict[str, list[dict]] = {}
    for path in local_files(local_path):
        records.setdefault(split_of(path), []).extend(iter_records_file(path))
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("ToolAlpaca-derived tool use (SDPO ToolUse) -> verl parquet")
    parser.add_argument("--agent-name", choices=AGENT_NAMES, default="single_turn_agent")
    args = parser.parse_args(argv)
    outputs = {}
    for split, records in read_splits(args.local_path).items():
        chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
        outputs[f"toolalpaca_{split}"] = convert_all(chosen, converter(split, args.agent_name))
    return write_outputs(outputs, args.out)


if __name__ == "__main__":
    sys.exit(main())
