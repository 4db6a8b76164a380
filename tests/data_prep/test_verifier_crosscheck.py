"""Every ground truth the writers produce is read by the matching verifier: a correct reference answer
scores 1.0 and a wrong one 0.0."""

import json

import pytest

verl_reward = pytest.importorskip("verifiers.verl_reward")

# Reference programs for the fixture's LiveCodeBench problems, and a variant that fails every test, so it
# fails whichever subset of the tests a train row keeps.
CODE_SOLUTIONS = {
    "abc400_a": (
        "a, b = map(int, input().split())\nprint(a + b)",
        "a, b = map(int, input().split())\nprint(a + b + 1)",
    ),
    "3500": (
        "class Solution:\n    def countAbove(self, nums, k):\n        return sum(1 for x in nums if x > k)",
        "class Solution:\n    def countAbove(self, nums, k):\n        return -1",
    ),
}


def react(calls) -> str:
    steps = [
        f"Thought: I should call {call['name']}.\nAction: {call['name']}\nAction Input: {json.dumps(call['arguments'])}"
        for call in calls
    ]
    return "\n".join(steps)


def responses(row) -> tuple[str, str]:
    """(a correct response, a wrong response) for a written row."""
    verifier = row["extra_info"]["verifier"]
    ground_truth = row["reward_model"]["ground_truth"]
    if verifier == "math":
        return f"So the answer is $\\boxed{{{ground_truth}}}$.", "So the answer is $\\boxed{-98765}$."
    if verifier == "science":
        wrong = next(label for label in row["extra_info"]["choice_labels"] if label != ground_truth)
        return (
            f"<reasoning>Checked each option.</reasoning>\n<answer>\n{ground_truth}\n</answer>",
            f"<reasoning>Guessing.</reasoning>\n<answer>\n{wrong}\n</answer>",
        )
    if verifier == "tool":
        calls = json.loads(ground_truth)
        return react(calls), react([{"name": calls[0]["name"], "arguments": {"unexpected": "value"}}])
    correct, wrong = CODE_SOLUTIONS[row["extra_info"]["question_id"]]
    return f"Here it is.\n```python\n{correct}\n```", f"Here it is.\n```python\n{wrong}\n```"


def test_reference_answers_pass_and_wrong_answers_fail(prepared):
    rows = [row for path in prepared.parquet_files() for row in prepared.rows(path.stem)]
    assert {row["extra_info"]["verifier"] for row in rows} == {"math", "code", "science", "tool"}

    for row in rows:
        correct, wrong = responses(row)
        arguments = (row["data_source"], row["reward_model"]["ground_truth"])
        passed = verl_reward.compute_score(arguments[0], correct, arguments[1], extra_info=row["extra_info"])
        failed = verl_reward.compute_score(arguments[0], wrong, arguments[1], extra_info=row["extra_info"])
        label = f"{row['data_source']} row {row['extra_info']['index']} ({row['extra_info']['split']})"
        assert passed["score"] == 1.0, (label, passed)
        assert failed["score"] == 0.0, (label, failed)
