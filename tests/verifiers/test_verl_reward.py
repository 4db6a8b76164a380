"""The verl entry point: contract, routing, errors, threads, and verl's own loading path."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import verifiers
from verifiers import RESULT_KEYS, register_verifier, unregister_verifier, verify_batch
from verifiers.batch import summarize
from verifiers.errors import GroundTruthError, UnknownVerifierError, VerifierConfigError
from verifiers.verl_reward import compute_score

VERL_REWARD_FILE = Path(verifiers.__file__).with_name("verl_reward.py")
TOOL_GOLD = json.dumps([{"name": "f", "arguments": {"x": 1}}])


@pytest.fixture
def rollouts(code_gt):
    return [
        ("math/aime", r"\boxed{204}", "204", True),
        ("math/aime", r"\boxed{205}", "204", False),
        ("code/lcb", "```python\nprint(int(input()) * 2)\n```", code_gt(["2\n"], ["4\n"]), True),
        ("code/lcb", "no code", code_gt(["2\n"], ["4\n"]), False),
        ("science/sciknoweval/Biology", "<answer>B</answer>", "B", True),
        ("science/sciknoweval/Biology", "<answer>A</answer>", "B", False),
        ("tool/toolalpaca", 'Action: f\nAction Input: {"x": 1}', TOOL_GOLD, True),
        ("tool/toolalpaca", "Action: f\nAction Input: {}", TOOL_GOLD, False),
    ]


@pytest.mark.usefixtures("local_sandbox")
def test_every_verifier_returns_the_same_scalar_keys(rollouts):
    for data_source, response, ground_truth, acc in rollouts:
        result = compute_score(data_source, response, ground_truth, {"index": 0})
        assert tuple(result) == RESULT_KEYS, data_source
        assert all(isinstance(value, float | int | bool | str) for value in result.values())
        assert result["acc"] is acc and result["score"] == float(acc), (data_source, result)
        assert result["verifier"] == data_source.split("/")[0]


def test_extra_info_verifier_overrides_the_data_source():
    assert compute_score("aime2024", r"\boxed{1}", "1", {"verifier": "math"})["acc"]


def test_unknown_verifier_raises():
    with pytest.raises(UnknownVerifierError):
        compute_score("aime2024", r"\boxed{1}", "1")
    with pytest.raises(UnknownVerifierError):
        compute_score("math/x", r"\boxed{1}", "1", {"verifier": "nonexistent"})


@pytest.mark.parametrize(
    ("data_source", "ground_truth", "error"),
    [
        ("math/x", "", GroundTruthError),
        ("code/x", "{not json", GroundTruthError),
        ("science/x", "Z9", GroundTruthError),
        ("tool/x", "[1]", GroundTruthError),
    ],
)
def test_malformed_ground_truth_raises(data_source, ground_truth, error):
    with pytest.raises(error):
        compute_score(data_source, "anything", ground_truth)


def test_bad_options_raise():
    with pytest.raises(VerifierConfigError, match="bad options for verifier 'math'"):
        compute_score("math/x", r"\boxed{1}", "1", verifier_options={"math": {"no_such_option": 1}})


@pytest.mark.parametrize("response", [None, "", "\x00\udcff" * 10, "}" * 100_000 + r"\boxed{", 12345])
@pytest.mark.parametrize(
    ("data_source", "ground_truth"), [("math/x", "1"), ("science/x", "A"), ("tool/x", TOOL_GOLD)]
)
def test_bad_model_output_never_raises(response, data_source, ground_truth):
    assert compute_score(data_source, response, ground_truth)["score"] == 0.0


def test_crashing_verifier_scores_zero():
    @register_verifier("test_crashes")
    def crashes(solution_str, ground_truth, extra_info=None):
        raise RuntimeError("bug in a user verifier")

    try:
        result = compute_score("test_crashes/x", "r", "g")
    finally:
        unregister_verifier("test_crashes")
    assert (result["score"], result["reason"]) == (0.0, "verifier_error")


def test_verl_call_conventions():
    # verl adds reward-model kwargs and passes reward_kwargs as OmegaConf; extra_info may hold numpy.
    options = OmegaConf.create({"math": {"timeout": 5}, "science": {}})
    result = compute_score(
        data_source="science/x",
        solution_str="<answer>B</answer>",
        ground_truth="B",
        extra_info={"choice_labels": np.array(["A", "B"]), "num_turns": None, "rollout_reward_scores": {}},
        verifier_options=options,
        reward_router_address=None,
        reward_model_tokenizer=None,
    )
    assert result["acc"]


@pytest.mark.usefixtures("local_sandbox")
def test_loaded_by_file_path_and_called_from_a_worker_thread(code_gt):
    """What verl does: load_extern_object(path, name), then call it off the main thread."""
    from verl.utils.import_utils import load_extern_object

    compute = load_extern_object(module_path=str(VERL_REWARD_FILE), object_name="compute_score")
    results = {}

    def work():
        results["math"] = compute("math/x", r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", {})
        results["code"] = compute(
            "code/x", "```python\nprint(input()[::-1])\n```", code_gt(["abc\n"], ["cba\n"]), {}
        )

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert results["math"]["acc"] and results["code"]["acc"]


@pytest.mark.usefixtures("local_sandbox")
def test_verify_batch_and_summary(rollouts):
    rows = [
        {"data_source": source, "response": response, "ground_truth": gold, "extra_info": {}}
        for source, response, gold, _ in rollouts
    ]
    rows.append({"data_source": "math/x", "response": "x", "reward_model": {"ground_truth": "1"}})
    rows.append({"data_source": "code/x", "response": "x", "ground_truth": "{broken"})
    results = verify_batch(rows, workers=2, raise_on_config_error=False)
    assert [r["acc"] for r in results[: len(rollouts)]] == [acc for *_, acc in rollouts]
    assert results[-1]["reason"] == "config_error"
    summary = summarize(rows, results)
    assert summary["count"] == len(rows) and summary["mean_score"] == pytest.approx(4 / len(rows))
    assert summary["per_data_source"]["math/aime"] == {"count": 2, "mean_score": 0.5}
    assert summary["failure_reasons"]["config_error"] == 1
    with pytest.raises(GroundTruthError):
        verify_batch(rows[-1:])
