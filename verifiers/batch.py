"""Score many rollouts at once, in parallel, and summarise them."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from verifiers.code.backends import default_workers
from verifiers.errors import VerifierConfigError
from verifiers.result import VerifierResult
from verifiers.verl_reward import compute_score


def row_fields(row: Mapping[str, Any]) -> tuple[str, str, Any, Mapping[str, Any] | None]:
    """(data_source, response, ground_truth, extra_info) from a rollout row or a verl parquet row."""
    response = row.get("response", row.get("solution_str"))
    ground_truth = row.get("ground_truth")
    if ground_truth is None and isinstance(row.get("reward_model"), Mapping):
        ground_truth = row["reward_model"].get("ground_truth")
    if row.get("data_source") is None or response is None or ground_truth is None:
        raise VerifierConfigError("each row needs data_source, response and ground_truth")
    return str(row["data_source"]), str(response), ground_truth, row.get("extra_info")


def verify_batch(
    rows: Iterable[Mapping[str, Any]],
    *,
    workers: int | None = None,
    verifier_options: Mapping[str, Mapping[str, Any]] | None = None,
    raise_on_config_error: bool = True,
) -> list[dict[str, Any]]:
    """`compute_score` over rows with up to `workers` rollouts (and code sandboxes) at a time.

    With `raise_on_config_error=False` a row with a malformed ground truth or an unknown verifier
    gets score 0 and reason "config_error" instead of stopping the batch.
    """
    rows = list(rows)
    workers = workers or default_workers()
    options = copy.deepcopy(dict(verifier_options or {}))
    code_options = options.setdefault("code", {})
    code_options.setdefault("workers", workers)
    # With a rollout per worker there is no spare capacity to split one program's tests.
    code_options.setdefault("split_tests", len(rows) < workers)

    def score(row: Mapping[str, Any]) -> dict[str, Any]:
        try:
            data_source, response, ground_truth, extra_info = row_fields(row)
            return compute_score(data_source, response, ground_truth, extra_info, verifier_options=options)
        except VerifierConfigError as error:
            if raise_on_config_error:
                raise
            return VerifierResult.failure("config_error", str(error)).to_dict("unknown")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        return list(pool.map(score, rows))


def summarize(rows: list[Mapping[str, Any]], results: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Count, mean score, per data_source, and per failure reason."""
    by_source: dict[str, list[float]] = defaultdict(list)
    for row, result in zip(rows, results, strict=True):
        by_source[str(row.get("data_source"))].append(float(result["score"]))
    reasons = Counter(result["reason"] for result in results if result["reason"])
    scores = [float(result["score"]) for result in results]
    return {
        "count": len(results),
        "mean_score": sum(scores) / len(scores) if scores else 0.0,
        "per_data_source": {
            source: {"count": len(values), "mean_score": sum(values) / len(values)}
            for source, values in sorted(by_source.items())
        },
        "failure_reasons": dict(reasons.most_common()),
    }
