"""Contrastive losses against values computed by hand with math.log / math.exp."""

import math

import pytest
import torch

from clapsweep.losses import clap_loss, soft_clap_loss

# Student logits for N = 2; not symmetric, so rows (audio->text) and columns (text->audio) differ.
LOGITS = [[2.0, 0.0], [1.0, 3.0]]

# Log-softmax of each row and column, written out (log softmax(x)_k = -log sum_j e^(x_j - x_k)):
#   row 0 [2, 0]: [-log(1+e^-2), -log(1+e^2)]     row 1 [1, 3]: [-log(1+e^2), -log(1+e^-2)]
#   col 0 [2, 1]: [-log(1+e^-1), -log(1+e^1)]     col 1 [0, 3]: [-log(1+e^3), -log(1+e^-3)]
A = math.log(1 + math.exp(-2))  # -log p of the diagonal in both rows
B = math.log(1 + math.exp(2))  # -log p off the diagonal in both rows
C = math.log(1 + math.exp(-1))  # col 0, diagonal
D = math.log(1 + math.exp(1))  # col 0, off-diagonal
E = math.log(1 + math.exp(-3))  # col 1, diagonal
F_ = math.log(1 + math.exp(3))  # col 1, off-diagonal

# Teacher embeddings, deliberately not unit length (the loss normalises them):
#   audio [1, 0], [3, 4] -> [0.6, 0.8]: S_a = [[1, 0.6], [0.6, 1]]
#   text  [2, 0], [-4, 3] -> [-0.8, 0.6]: S_t = [[1, -0.8], [-0.8, 1]] (a negative cosine)
TEACHER_AUDIO = [[1.0, 0.0], [3.0, 4.0]]
TEACHER_TEXT = [[2.0, 0.0], [-4.0, 3.0]]

CLAP = 0.5 * (A + (C + E) / 2)  # rows: mean(A, A); columns: mean(C, E)


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _soft(mode: str, beta: float = 0.3, swap: bool = False, **kw) -> float:
    audio, text = (TEACHER_TEXT, TEACHER_AUDIO) if swap else (TEACHER_AUDIO, TEACHER_TEXT)
    return soft_clap_loss(_t(LOGITS), _t(audio), _t(text), beta, mode, **kw).item()


def test_clap_loss_hand_value():
    assert clap_loss(_t(LOGITS)).item() == pytest.approx(CLAP, rel=1e-6)
    assert CLAP == pytest.approx(0.15393, abs=1e-5)  # 0.5 * (0.12693 + (0.31326 + 0.04859) / 2)


def test_clap_loss_gradient_hand_value():
    # dL/dx_ij = 1/2 [ (softmax(row_i)_j - d_ij) / N + (softmax(col_j)_i - d_ij) / N ], N = 2.
    # sigma(x) = 1 / (1 + e^-x); row 0 softmax = [sigma(2), sigma(-2)], col 0 = [sigma(1), sigma(-1)].
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [
        [0.25 * ((s(2) - 1) + (s(1) - 1)), 0.25 * (s(-2) + s(-3))],
        [0.25 * (s(-2) + s(-1)), 0.25 * ((s(2) - 1) + (s(3) - 1))],
    ]
    logits = _t(LOGITS).requires_grad_()
    clap_loss(logits).backward()
    torch.testing.assert_close(logits.grad, _t(expected))


@pytest.mark.parametrize("mode", ["paper", "normalized", "softmax"])
def test_beta_zero_equals_clap_loss_exactly(mode):
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0)) * 4
    teachers = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    soft = soft_clap_loss(logits, teachers[0], teachers[1], 0.0, mode)
    assert torch.equal(soft, clap_loss(logits))
    assert _soft(mode, beta=0.0) == pytest.approx(CLAP, rel=1e-6)


def test_paper_mode_hand_value():
    # a->t targets (1-0.3) I + 0.3 S_a = [[1, 0.18], [0.18, 1]] (log 1 = 0):
    #   KL row i = 1 * (0 + A) + 0.18 * (log 0.18 + B), the same for both rows.
    # t->a targets [[1, -0.24], [-0.24, 1]]: -0.24 contributes 0, so KL col 0 = C, col 1 = E.
    rows = A + 0.18 * (math.log(0.18) + B)
    cols = (C + E) / 2
    assert _soft("paper") == pytest.approx(0.5 * (rows + cols), rel=1e-5)


def test_normalized_mode_hand_value():
    # S_a clamped = S_a, row sums 1.6 -> [[0.625, 0.375], [0.375, 0.625]];
    #   targets 0.7 I + 0.3 S' = [[0.8875, 0.1125], [0.1125, 0.8875]].
    # S_t clamped at 0 = I (the -0.8 goes), already normalised -> target I, KL = C and E.
    rows = 0.8875 * (math.log(0.8875) + A) + 0.1125 * (math.log(0.1125) + B)
    cols = (C + E) / 2
    assert _soft("normalized") == pytest.approx(0.5 * (rows + cols), rel=1e-5)


def test_softmax_mode_hand_value():
    # Teacher temperature 0.5: S_a / 0.5 rows [2, 1.2] -> softmax [p, 1-p], p = 1/(1+e^-0.8);
    # S_t / 0.5 rows [2, -1.6] -> [r, 1-r], r = 1/(1+e^-3.6). Both matrices are symmetric.
    p = 1 / (1 + math.exp(-0.8))
    r = 1 / (1 + math.exp(-3.6))
    ya, yb = 0.7 + 0.3 * p, 0.3 * (1 - p)  # a->t row i: diagonal ya, other yb
    za, zb = 0.7 + 0.3 * r, 0.3 * (1 - r)  # t->a row i: diagonal za, other zb
    rows = ya * (math.log(ya) + A) + yb * (math.log(yb) + B)
    col0 = za * (math.log(za) + C) + zb * (math.log(zb) + D)
    col1 = zb * (math.log(zb) + F_) + za * (math.log(za) + E)
    expected = 0.5 * (rows + (col0 + col1) / 2)
    assert _soft("softmax", teacher_temperature=0.5) == pytest.approx(expected, rel=1e-5)


def test_audio_similarity_sets_rows_and_text_similarity_sets_columns():
    # Swapping the teachers puts S_t on the rows and S_a on the columns (paper mode):
    #   rows: targets [[1, -0.24], ...] -> KL = A each
    #   col 0: 1 * C + 0.18 * (log 0.18 + D);  col 1: 0.18 * (log 0.18 + F) + 1 * E
    swapped = 0.5 * (A + (C + E) / 2 + 0.18 * math.log(0.18) + 0.09 * (D + F_))
    original = 0.5 * (A + 0.18 * (math.log(0.18) + B) + (C + E) / 2)
    assert _soft("paper", swap=True) == pytest.approx(swapped, rel=1e-5)
    assert _soft("paper") == pytest.approx(original, rel=1e-5)
    assert swapped - original == pytest.approx(0.5 * (0.09 * (D + F_) - 0.18 * B))
    assert abs(swapped - original) > 4e-3


@pytest.mark.parametrize("mode", ["paper", "normalized", "softmax"])
@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_finite_for_orthogonal_opposite_and_zero_teachers_in_bf16(mode, beta):
    # Orthogonal, opposite and all-zero teacher vectors; huge bf16 logits.
    teacher = _t([[1, 0], [0, 1], [-1, 0], [0, 0]])
    logits = (torch.randn(4, 4, generator=torch.Generator().manual_seed(2)) * 100).bfloat16()
    logits.requires_grad_()
    loss = soft_clap_loss(logits, teacher, -teacher, beta, mode)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(logits.grad.float()).all()


def test_normalized_zero_rows_fall_back_to_one_hot():
    # All-zero teachers: every normalised row is one-hot, so even beta = 1 gives the hard loss.
    zeros = torch.zeros(2, 3)
    loss = soft_clap_loss(_t(LOGITS), zeros, zeros, 1.0, "normalized")
    assert loss.item() == pytest.approx(CLAP, rel=1e-6)


def test_gradient_reaches_logits_not_teachers():
    logits = _t(LOGITS).requires_grad_()
    audio = _t(TEACHER_AUDIO).requires_grad_()
    text = _t(TEACHER_TEXT).requires_grad_()
    soft_clap_loss(logits, audio, text, 0.3, "softmax").backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert audio.grad is None and text.grad is None


def test_unknown_soft_target_names_the_choices():
    with pytest.raises(ValueError, match="paper, normalized, softmax.*'kl'"):
        soft_clap_loss(_t(LOGITS), _t(TEACHER_AUDIO), _t(TEACHER_TEXT), 0.3, "kl")
