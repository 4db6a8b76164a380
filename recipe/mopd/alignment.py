"""Row alignment between the teacher's and the student's log-prob tensors.

The teacher scores [teacher prompt (P'); response (R)] and the student [prompt (P); response (R)], both in
verl's left-shifted layout (row r predicts token r + 1; the last row is a dummy). The response rows sit at
different offsets; these helpers move the teacher's rows onto the student's so the loss compares the
two models' predictions of the same response token.
"""

from __future__ import annotations

import torch


def _check_lengths(prompt_len: int, response_len: int, prompt_label: str) -> None:
    for value, label in ((prompt_len, prompt_label), (response_len, "response_len")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{label} must be an int, got {value!r}")
    # Row P - 1 predicts the first response token, so a prompt needs at least one token.
    if prompt_len < 1:
        raise ValueError(f"{prompt_label} must be >= 1, got {prompt_len}")
    if response_len < 0:
        raise ValueError(f"response_len must be >= 0, got {response_len}")


def teacher_rows_to_student_layout(
    teacher_logprobs: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_prompt_len: int,
    student_prompt_len: int,
    response_len: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the teacher's response rows to the student's row positions.

    Inputs are [P' + R, ...] (e.g. [P' + R, K] top-k log-probs and their token ids). Returns tensors of
    shape [P + R, ...] with out[P - 1 + j] = teacher[P' - 1 + j] for j in [0, R): the row predicting
    response token j. Every other row (prompt rows and the final dummy row) is 0, ids included.
    """
    _check_lengths(teacher_prompt_len, response_len, "teacher_prompt_len")
    _check_lengths(student_prompt_len, response_len, "student_prompt_len")
    if teacher_logprobs.shape != teacher_ids.shape:
        raise ValueError(
            f"teacher_logprobs {tuple(teacher_logprobs.shape)} and teacher_ids {tuple(teacher_ids.shape)} "
            "must have the same shape"
        )
    if teacher_logprobs.dim() < 1:
        raise ValueError("teacher_logprobs must have a sequence dimension")
    expected = teacher_prompt_len + response_len
    if teacher_logprobs.shape[0] != expected:
        raise ValueError(
            f"teacher rows: expected teacher_prompt_len + response_len = {teacher_prompt_len} + "
            f"{response_len} = {expected} rows, got {teacher_logprobs.shape[0]}"
        )
    rows = student_prompt_len + response_len
    trailing = tuple(teacher_logprobs.shape[1:])
    out_logprobs = teacher_logprobs.new_zeros((rows, *trailing))
    out_ids = teacher_ids.new_zeros((rows, *trailing))
    src = slice(teacher_prompt_len - 1, teacher_prompt_len - 1 + response_len)
    dst = slice(student_prompt_len - 1, student_prompt_len - 1 + response_len)
    out_logprobs[dst] = teacher_logprobs[src]
    out_ids[dst] = teacher_ids[src]
    return out_logprobs, out_ids


def response_logprobs_from_rows(rows: torch.Tensor, prompt_len: int, response_len: int) -> torch.Tensor:
    """Rows predicting the R response tokens, rows[P - 1 : P - 1 + R]; the first column when 2-D.

    For [S, 1] rows (verl's K = 1 layout: the log-prob of the actual next token) this is the response's
    per-token log-probs.
    """
    _check_lengths(prompt_len, response_len, "prompt_len")
    if rows.dim() not in (1, 2):
        raise ValueError(f"rows must be [S] or [S, K], got shape {tuple(rows.shape)}")
    if rows.shape[0] != prompt_len + response_len:
        raise ValueError(
            f"rows: expected prompt_len + response_len = {prompt_len + response_len} rows, "
            f"got {rows.shape[0]}"
        )
    selected = rows[prompt_len - 1 : prompt_len - 1 + response_len]
    return selected[:, 0] if selected.dim() == 2 else selected


def packed_response_rows(prompt_lens, response_lens) -> torch.Tensor:
    """Rows predicting the response tokens when sequences [P_i ; R_i] are packed back to back.

    Sample i starts at o_i = sum_{k<i} (P_k + R_k); its row predicting response token j is o_i + P_i - 1 + j,
    the rule of `teacher_rows_to_student_layout`. Returns the concatenation over samples, [sum R_i], so the
    same call on the student's prompts and on the teacher's (same R_i) pairs the two models' rows 1:1.
    """
    prompt_lens = torch.as_tensor(prompt_lens, dtype=torch.long).reshape(-1)
    response_lens = torch.as_tensor(response_lens, dtype=torch.long, device=prompt_lens.device).reshape(-1)
    if prompt_lens.shape != response_lens.shape:
        raise ValueError(f"{prompt_lens.numel()} prompt lengths but {response_lens.numel()} response lengths")
    if (prompt_lens < 1).any() or (response_lens < 0).any():
        raise ValueError("prompt lengths must be >= 1 and response lengths >= 0")
    starts = torch.cumsum(prompt_lens + response_lens, 0) - response_lens - 1
    first_row = torch.repeat_interleave(starts, response_lens)
    within = torch.arange(int(response_lens.sum()), device=prompt_lens.device) - torch.repeat_interleave(
        torch.cumsum(response_lens, 0) - response_lens, response_lens
    )
    return first_row + within
