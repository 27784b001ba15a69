"""Zero-shot accuracy and retrieval recall on hand-made embeddings with known answers."""

import math

import pytest
import torch

from clapsweep.metrics import prompt_for, retrieval_recall, zero_shot_accuracy


@pytest.mark.parametrize(
    "label, prompt",
    [
        ("cafe/restaurant", "this is a sound of cafe restaurant"),
        ("dog_bark", "this is a sound of dog bark"),
        ("  car__horn / siren ", "this is a sound of car horn siren"),
        ("rain", "this is a sound of rain"),
    ],
)
def test_prompt_for(label, prompt):
    assert prompt_for(label) == prompt


# Three classes along the axes; clips at various lengths (accuracy must not depend on norms).
CLASSES = torch.eye(3)
CLIPS = torch.tensor(
    [
        [1.0, 0.1, 0.0],  # -> 0, target 0
        [0.0, 5.0, 0.5],  # -> 1, target 1
        [0.1, 0.0, 0.2],  # -> 2, target 2
        [0.9, 1.0, 0.0],  # -> 1, target 0: the one wrong
    ]
)
TARGETS = torch.tensor([0, 1, 2, 0])


def test_zero_shot_accuracy_and_per_fold():
    result = zero_shot_accuracy(CLIPS, CLASSES, TARGETS, folds=["10", "2", "10", "2"])
    assert result["accuracy"] == 0.75
    assert result["n"] == 4
    assert result["predictions"] == [0, 1, 2, 1]
    # fold "2" holds clips 1 (right) and 3 (wrong); natural order puts "2" before "10".
    assert list(result["per_fold"].items()) == [("2", 0.5), ("10", 1.0)]


def test_zero_shot_without_folds_and_natural_fold_names():
    assert zero_shot_accuracy(CLIPS, CLASSES, TARGETS)["per_fold"] == {}
    folds = ["fold10", "fold2", "fold1", "fold2"]
    per_fold = zero_shot_accuracy(CLIPS, CLASSES, TARGETS, folds)["per_fold"]
    assert list(per_fold) == ["fold1", "fold2", "fold10"]
    assert per_fold == {"fold1": 1.0, "fold2": 0.5, "fold10": 1.0}


def test_zero_shot_uses_cosine_not_dot_product():
    # Clip [1, 0.1]: cosine to [1, 0] is 0.995, to [10, 10] is 0.78 -> class 0,
    # although the dot product (1 vs 11) would pick class 1.
    classes = torch.tensor([[1.0, 0.0], [10.0, 10.0]])
    result = zero_shot_accuracy(torch.tensor([[1.0, 0.1]]), classes, torch.tensor([0]))
    assert result["predictions"] == [0]


def test_zero_shot_ties_go_to_the_lowest_class():
    classes = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    result = zero_shot_accuracy(torch.tensor([[2.0, 0.0]]), classes, torch.tensor([2]))
    assert result["predictions"] == [1]
    assert result["accuracy"] == 0.0


def test_zero_shot_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(0)
    audio, classes = torch.randn(50, 8, generator=gen), torch.randn(7, 8, generator=gen)
    targets = torch.randint(0, 7, (50,), generator=gen)
    folds = [str(i % 5 + 1) for i in range(50)]
    assert zero_shot_accuracy(audio, classes, targets, folds, chunk_size=3) == zero_shot_accuracy(
        audio, classes, targets, folds
    )


def test_zero_shot_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="4 clips, 3 targets"):
        zero_shot_accuracy(CLIPS, CLASSES, TARGETS[:3])


def _at(degrees: float, length: float = 1.0) -> list[float]:
    return [length * math.cos(math.radians(degrees)), length * math.sin(math.radians(degrees))]


# Unit-circle embeddings, so cosine = cos(angle difference); some lengths changed to catch a
# dot product (a1 x3 would win t0 by dot product). Clip 0 has two captions.
#   audio: a0 0 deg, a1 60 deg (length 3), a2 120 deg
#   text:  t0 100 deg (of a0, length 0.5), t1 -10 deg (of a0), t2 0 deg (of a1), t3 125 deg (of a2)
AUDIO = torch.tensor([_at(0), _at(60, 3.0), _at(120)])
TEXT = torch.tensor([_at(100, 0.5), _at(-10), _at(0), _at(125)])
TEXT_TO_AUDIO = torch.tensor([0, 0, 1, 2])


def test_retrieval_recall_hand_ranking():
    # t2a, angle to each clip (a0, a1, a2):
    #   t0: 100, 40, 20 -> a0 rank 2;  t1: 10, 70, 130 -> rank 0
    #   t2: 0, 60, 120  -> a1 rank 1;  t3: 125, 65, 5  -> rank 0      ranks [2, 0, 1, 0]
    # a2t, angle to each caption (t0, t1, t2, t3):
    #   a0: 100, 10, 0, 125  -> order t2, t1, t0, t3; best own (t1) rank 1 (t0 alone: rank 2)
    #   a1: 40, 70, 60, 65   -> order t0, t2, ...;    own t2 rank 1
    #   a2: 20, 130, 120, 5  -> order t3, ...;        own t3 rank 0      ranks [1, 1, 0]
    result = retrieval_recall(AUDIO, TEXT, TEXT_TO_AUDIO, ks=(1, 2, 10))
    assert result == pytest.approx(
        {
            "t2a_R@1": 2 / 4,
            "t2a_R@2": 3 / 4,
            "t2a_R@10": 1.0,  # k = 10 > 3 clips: clipped, every caption is a hit
            "a2t_R@1": 1 / 3,
            "a2t_R@2": 1.0,
            "a2t_R@10": 1.0,
        }
    )


def test_retrieval_skips_clips_without_captions_and_breaks_ties_by_index():
    # a0 and a1 are identical; the only caption (of a1) ties them and ranks a1 second.
    # a2 has no caption and so does not count in a2t.
    audio = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    result = retrieval_recall(audio, torch.tensor([[1.0, 0.0]]), torch.tensor([1]), ks=(1, 2))
    assert result == {"t2a_R@1": 0.0, "t2a_R@2": 1.0, "a2t_R@1": 1.0, "a2t_R@2": 1.0}


def test_retrieval_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(1)
    audio, text = torch.randn(40, 6, generator=gen), torch.randn(90, 6, generator=gen)
    owner = torch.randint(0, 40, (90,), generator=gen)
    chunked = retrieval_recall(audio, text, owner, chunk_size=7)
    assert chunked == retrieval_recall(audio, text, owner)
    assert 0.0 < chunked["t2a_R@10"] < 1.0 and 0.0 < chunked["a2t_R@5"] < 1.0


def test_retrieval_rejects_caption_of_unknown_clip():
    with pytest.raises(ValueError, match=r"text_to_audio must lie in \[0, 2\]"):
        retrieval_recall(AUDIO, TEXT, torch.tensor([0, 0, 1, 3]))
