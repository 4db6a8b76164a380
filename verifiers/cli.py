"""Command line: check one response, or score a file of rollouts.

    python -m verifiers check --data-source math/aime --ground-truth 204 --response-file r.txt
    echo 'The answer is \\boxed{204}' | python -m verifiers check --data-source math/aime --ground-truth 204
    python -m verifiers batch rollouts.parquet --workers 8 --output scored.jsonl

A batch file (.parquet, .jsonl or .json) has columns data_source, response, ground_truth (or a verl
`reward_model.ground_truth`) and optionally extra_info.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from verifiers.batch import summarize, verify_batch
from verifiers.errors import VerifierConfigError
from verifiers.verl_reward import compute_score


def _json_argument(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--{what} is not JSON: {error}") from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        from pyarrow import parquet

        return parquet.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        rows = json.loads(text)
        return rows if isinstance(rows, list) else [rows]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _parse_extra_info(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("extra_info"), str):  # JSON-encoded in some exports
        row = {**row, "extra_info": json.loads(row["extra_info"])}
    return row


def check(args: argparse.Namespace) -> int:
    if args.ground_truth_file:
        ground_truth = Path(args.ground_truth_file).read_text(encoding="utf-8")
    elif args.ground_truth is not None:
        ground_truth = args.ground_truth
    else:
        raise SystemExit("give --ground-truth or --ground-truth-file")
    response = (
        Path(args.response_file).read_text(encoding="utf-8") if args.response_file else sys.stdin.read()
    )
    result = compute_score(
        args.data_source,
        response,
        ground_truth,
        _json_argument(args.extra_info, "extra-info"),
        verifier_options=_json_argument(args.options, "options"),
    )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def batch(args: argparse.Namespace) -> int:
    rows = [_parse_extra_info(row) for row in read_rows(Path(args.file))]
    results = verify_batch(
        rows,
        workers=args.workers,
        verifier_options=_json_argument(args.options, "options"),
        raise_on_config_error=False,
    )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as output:
            output.writelines(json.dumps(result, ensure_ascii=False) + "\n" for result in results)
    summary = summarize(rows, results)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"rollouts: {summary['count']}   mean score: {summary['mean_score']:.4f}",
        "",
        "per data_source:",
    ]
    width = max((len(source) for source in summary["per_data_source"]), default=10)
    for source, stats in summary["per_data_source"].items():
        lines.append(f"  {source:<{width}}  n={stats['count']:<6} mean={stats['mean_score']:.4f}")
    lines += ["", "failure reasons:"]
    lines += [f"  {reason:<16} {count}" for reason, count in summary["failure_reasons"].items()] or [
        "  (none)"
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verifiers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    one = commands.add_parser("check", help="score one response (from --response-file or stdin)")
    one.add_argument("--data-source", required=True, help="e.g. math/aime, code/livecodebench")
    one.add_argument("--ground-truth", help="the ground truth string (JSON for code and tool)")
    one.add_argument("--ground-truth-file", help="read the ground truth from a file instead")
    one.add_argument("--response-file", help="the response text; default: stdin")
    one.add_argument("--extra-info", help='JSON object, e.g. {"verifier": "math"}')
    one.add_argument("--options", help='JSON verifier options, e.g. {"code": {"timeout": 2}}')
    one.set_defaults(handler=check)

    many = commands.add_parser("batch", help="score a .parquet/.jsonl/.json file of rollouts and summarise")
    many.add_argument("file")
    many.add_argument("--workers", type=int, default=None, help="rollouts scored at once (default: CPUs)")
    many.add_argument("--options", help="JSON verifier options")
    many.add_argument("--output", help="write one result per row to this .jsonl file")
    many.add_argument("--json", action="store_true", help="print the summary as JSON")
    many.set_defaults(handler=batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except VerifierConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
