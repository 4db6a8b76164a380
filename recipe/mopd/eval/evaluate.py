"""Mean@k and pass@k of a model on verl parquet, per data_source, scored by the project's verifiers.

    python -m recipe.mopd.eval.evaluate --model PATH --data FILE.parquet [FILE2 ...] --out DIR
        [--k 8] [--temperature 0.6] [--top-p 0.95] [--max-new-tokens 4096] [--backend hf|vllm]
        [--chat-template-kwargs '{"enable_thinking": false}']

Writes DIR/report.json (config, per-source and overall summary, per-problem counts), DIR/report.csv
(one row per data_source plus "overall"), DIR/problems.csv (per-problem counts) and DIR/samples.jsonl.
A sample counts as correct when the verifier's `acc` is true. "overall" averages over problems, so
sources with more problems weigh more.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from recipe.mopd.eval.generation import (
    SamplingConfig,
    chat_prompt_ids,
    generate_hf,
    generate_vllm,
    json_object,
    load_problems,
    verify,
)
from recipe.mopd.eval.passk import mean_at_k, mean_pass_at_k, report_ks

OVERALL = "overall"


@dataclass
class ProblemCounts:
    row: int
    data_source: str
    num_samples: int
    num_correct: int


def summarize(counts: list[ProblemCounts], k: int) -> dict[str, dict]:
    """{data_source: {num_problems, mean@k, pass@j for j in report_ks(k)}} plus an "overall" entry."""
    by_source: dict[str, list[ProblemCounts]] = {}
    for item in counts:
        by_source.setdefault(item.data_source, []).append(item)
    summary = {}
    for source, items in [*sorted(by_source.items()), (OVERALL, counts)]:
        n = [item.num_samples for item in items]
        c = [item.num_correct for item in items]
        entry = {"num_problems": len(items), f"mean@{k}": mean_at_k(n, c)}
        entry.update({f"pass@{j}": mean_pass_at_k(n, c, j) for j in report_ks(k)})
        summary[source] = entry
    return summary


def write_report(out_dir: Path, config: dict, counts: list[ProblemCounts], k: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(counts, k)
    report = {"config": config, "summary": summary, "problems": [asdict(item) for item in counts]}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    columns = list(next(iter(summary.values())))
    with open(out_dir / "report.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["data_source", *columns])
        for source, entry in summary.items():
            writer.writerow([source, *(entry[c] for c in columns)])
    with open(out_dir / "problems.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(counts[0])))
        writer.writeheader()
        writer.writerows(asdict(item) for item in counts)
    return report


def evaluate(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer

    sampling = SamplingConfig(
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    problems = load_problems(args.data, args.limit)
    if not problems:
        raise SystemExit(f"no problems in {args.data}")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompts = [chat_prompt_ids(tokenizer, p.prompt, args.chat_template_kwargs) for p in problems]
    if args.backend == "vllm":
        samples = generate_vllm(args.model, prompts, sampling, args.tensor_parallel_size)
    else:
        samples = generate_hf(args.model, prompts, sampling, args.batch_size)
    results = verify(problems, samples, args.verify_workers)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = []
    with open(out_dir / "samples.jsonl", "w") as f:
        for problem, group, scored in zip(problems, samples, results):
            correct = sum(bool(r["acc"]) for r in scored)
            counts.append(ProblemCounts(problem.row, problem.data_source, len(group), correct))
            for index, (sample, result) in enumerate(zip(group, scored)):
                record = {"row": problem.row, "sample": index, "response": sample.text, **result}
                f.write(json.dumps(record, default=str) + "\n")
    config = {
        "model": str(args.model),
        "data": [str(p) for p in args.data],
        "backend": args.backend,
        "chat_template_kwargs": args.chat_template_kwargs,
        **asdict(sampling),
    }
    return write_report(out_dir, config, counts, args.k)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m recipe.mopd.eval.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, nargs="+", help="verl parquet file(s)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--k", type=int, default=8, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--chat-template-kwargs", type=json_object, default={})
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--batch-size", type=int, default=64, help="hf: sequences per generation batch")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm only")
    parser.add_argument("--verify-workers", type=int, default=None)
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    report = evaluate(parse_args(argv))
    k = report["config"]["k"]
    for source, entry in report["summary"].items():
        print(
            f"{source}: problems={entry['num_problems']} mean@{k}={entry[f'mean@{k}']:.4f} "
            f"pass@{k}={entry[f'pass@{k}']:.4f}"
        )
    return report


if __name__ == "__main__":
    main()
