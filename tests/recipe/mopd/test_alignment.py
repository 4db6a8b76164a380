import pytest
import torch

from recipe.mopd.alignment import response_logprobs_from_rows, teacher_rows_to_student_layout

LENGTHS = [(7, 4, 5), (4, 4, 5), (3, 9, 6), (1, 1, 3), (5, 2, 1), (6, 3, 0)]


def index_encoded_rows(num_rows, k):
    """Teacher rows whose values name their own row index (and column), so any shift is visible."""
    rows = torch.arange(num_rows, dtype=torch.float64)[:, None] + 0.01 * torch.arange(k)[None, :]
    return rows, (1000 + torch.arange(num_rows))[:, None].repeat(1, k)


def reference_map_is_the_predicting_row(out_rows, teacher_seq, student_seq, p):
    """Every student response row must carry the teacher row that predicts the same response token."""
    r = len(student_seq) - p
    for j in range(r):
        teacher_row = int(out_rows[p - 1 + j, 0].round())
        # Left-shifted layout: row t predicts token t + 1.
        if teacher_seq[teacher_row + 1] != student_seq[p - 1 + j + 1]:
            return False
    return True


def sequences(p_teacher, p_student, r):
    response = list(range(500, 500 + r))
    return list(range(100, 100 + p_teacher)) + response, list(range(200, 200 + p_student)) + response


@pytest.mark.parametrize("p_teacher, p_student, r", LENGTHS)
def test_response_rows_move_to_the_rows_predicting_the_same_token(p_teacher, p_student, r):
    k = 3
    rows, ids = index_encoded_rows(p_teacher + r, k)
    out, out_ids = teacher_rows_to_student_layout(rows, ids, p_teacher, p_student, r)
    assert out.shape == (p_student + r, k) and out_ids.shape == (p_student + r, k)
    assert out.dtype == rows.dtype and out_ids.dtype == ids.dtype
    for j in range(r):
        assert torch.equal(out[p_student - 1 + j], rows[p_teacher - 1 + j])
        assert torch.equal(out_ids[p_student - 1 + j], ids[p_teacher - 1 + j])
    response_rows = torch.zeros(p_student + r, dtype=torch.bool)
    response_rows[p_student - 1 : p_student - 1 + r] = True
    assert not out[~response_rows].any() and not out_ids[~response_rows].any()
    teacher_seq, student_seq = sequences(p_teacher, p_student, r)
    assert reference_map_is_the_predicting_row(out, teacher_seq, student_seq, p_student)


def test_the_predicting_row_check_catches_an_off_by_one():
    # The remap of verl PR #6909 copies teacher[P':P'+R] to student[P:P+R], one row late.
    p_teacher, p_student, r = 7, 4, 5
    rows, _ = index_encoded_rows(p_teacher + r, 1)
    late = torch.zeros(p_student + r, 1, dtype=rows.dtype)
    late[p_student : p_student + r] = rows[p_teacher : p_teacher + r]
    teacher_seq, student_seq = sequences(p_teacher, p_student, r)
    assert not reference_map_is_the_predicting_row(late, teacher_seq, student_seq, p_student)


def test_one_dimensional_rows_are_supported():
    rows, ids = index_encoded_rows(9, 1)
    out, out_ids = teacher_rows_to_student_layout(rows[:, 0], ids[:, 0], 6, 2, 3)
    assert out.tolist() == [0.0, 5.0, 6.0, 7.0, 0.0]
    assert out_ids.tolist() == [0, 1005, 1006, 1007, 0]


def test_response_logprobs_from_rows_takes_the_first_column():
    rows, _ = index_encoded_rows(9, 3)
    assert response_logprobs_from_rows(rows, 4, 5).tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert response_logprobs_from_rows(rows[:, 0], 4, 5).tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert response_logprobs_from_rows(rows, 9, 0).shape == (0,)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((torch.zeros(9, 2), torch.zeros(9, 3, dtype=torch.long), 4, 4, 5), ValueError, "same shape"),
        ((torch.zeros(8, 2), torch.zeros(8, 2, dtype=torch.long), 4, 4, 5), ValueError, "expected .* 9 rows"),
        ((torch.zeros(5, 2), torch.zeros(5, 2, dtype=torch.long), 0, 4, 5), ValueError, "teacher_prompt_len"),
        ((torch.zeros(9, 2), torch.zeros(9, 2, dtype=torch.long), 4, 0, 5), ValueError, "student_prompt_len"),
        ((torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.long), 4, 4, -1), ValueError, "response_len"),
        (
            (torch.zeros(9, 2), torch.zeros(9, 2, dtype=torch.long), 4.0, 4, 5),
            TypeError,
            "teacher_prompt_len",
        ),
        ((torch.tensor(1.0), torch.tensor(1), 1, 1, 0), ValueError, "sequence dimension"),
    ],
)
def test_teacher_rows_validation(args, error, match):
    with pytest.raises(error, match=match):
        teacher_rows_to_student_layout(*args)


@pytest.mark.parametrize(
    "rows, p, r, match",
    [
        (torch.zeros(8), 4, 5, "9 rows"),
        (torch.zeros(9, 2, 2), 4, 5, r"\[S\]"),
        (torch.zeros(5), 0, 5, "prompt_len"),
    ],
)
def test_response_logprobs_validation(rows, p, r, match):
    with pytest.raises(ValueError, match=match):
        response_logprobs_from_rows(rows, p, r)


# ----------------------------------------------------------------------------------------------------------
# A real causal LM: the remapped teacher rows must be the model's log-probs of the response tokens.

VOCAB = 64
TOPK = 4


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
    )
    return Qwen2ForCausalLM(config).eval()


@torch.no_grad()
def left_shifted_rows(model, seq):
    """verl's layout: row t = [log p(seq[t+1]), top-(K-1) log-probs] at position t; the last row is 0."""
    logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].double(), dim=-1)
    nxt = torch.tensor(seq[1:])
    top = logp[:-1].topk(TOPK - 1, dim=-1)
    rows = torch.zeros(len(seq), TOPK, dtype=torch.float64)
    ids = torch.zeros(len(seq), TOPK, dtype=torch.long)
    rows[:-1, 0] = logp[:-1].gather(-1, nxt[:, None])[:, 0]
    ids[:-1, 0] = nxt
    rows[:-1, 1:], ids[:-1, 1:] = top.values, top.indices
    return rows, ids


@torch.no_grad()
def incremental_response_logprobs(model, prompt, response):
    """log p(response[j] | prompt, response[:j]) from a fresh forward per token: no shift arithmetic."""
    out = []
    for j, token in enumerate(response):
        logits = model(torch.tensor([prompt + response[:j]])).logits[0, -1].double()
        out.append(torch.log_softmax(logits, dim=-1)[token])
    return torch.stack(out)


def test_same_prompt_teacher_rows_equal_the_student_logprobs(tiny_lm):
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, VOCAB, (6,), generator=g).tolist()
    response = torch.randint(0, VOCAB, (5,), generator=g).tolist()
    rows, ids = left_shifted_rows(tiny_lm, prompt + response)
    out, out_ids = teacher_rows_to_student_layout(rows, ids, len(prompt), len(prompt), len(response))
    student = incremental_response_logprobs(tiny_lm, prompt, response)
    torch.testing.assert_close(response_logprobs_from_rows(out, len(prompt), len(response)), student)
    assert out_ids[len(prompt) - 1 : len(prompt) - 1 + len(response), 0].tolist() == response


def test_longer_teacher_prompt_rows_land_on_the_student_response_rows(tiny_lm):
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, VOCAB, (4,), generator=g).tolist()
    peers = torch.randint(0, VOCAB, (7,), generator=g).tolist()
    response = torch.randint(0, VOCAB, (6,), generator=g).tolist()
    teacher_prompt = prompt + peers
    rows, ids = left_shifted_rows(tiny_lm, teacher_prompt + response)
    out, out_ids = teacher_rows_to_student_layout(rows, ids, len(teacher_prompt), len(prompt), len(response))
    teacher = incremental_response_logprobs(tiny_lm, teacher_prompt, response)
    student = incremental_response_logprobs(tiny_lm, prompt, response)
    got = response_logprobs_from_rows(out, len(prompt), len(response))
    torch.testing.assert_close(got, teacher)
    assert not torch.allclose(got, student), "the context must matter, or this test proves nothing"
    # The top-k columns are the teacher's top-k at the position that predicts each response token.
    for j in range(len(response)):
        logits = tiny_lm(torch.tensor([teacher_prompt + response[:j]])).logits[0, -1].double()
        expected = torch.log_softmax(logits, dim=-1).topk(TOPK - 1)
        assert out_ids[len(prompt) - 1 + j, 1:].tolist() == expected.indices.tolist()
        torch.testing.assert_close(out[len(prompt) - 1 + j, 1:], expected.values)
