"""Tests for greedy CTC decoding and the error rates."""

import math

import torch

from symbiotic.data.an4 import LABELS, encode_text
from symbiotic.metrics.asr import cer, greedy_decode, labels_to_text, wer


def _one_hot_log_probs(paths: list[list[int]], T: int, C: int = 5) -> torch.Tensor:
    """(T, B, C) log-probs whose argmax per frame is the given path (padding argmax = 3)."""
    lp = torch.full((T, len(paths), C), math.log(0.01))
    lp[:, :, 3] = math.log(0.5)  # padding frames would decode to 3 if they were read
    for b, path in enumerate(paths):
        for t, c in enumerate(path):
            lp[t, b] = math.log(0.01)
            lp[t, b, c] = math.log(0.9)
    return lp


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    # 1 1 _ 1 2 2 _ _ -> 1 1 2 (the blank separates the two 1s); second utterance: _ 4 4 -> 4
    paths = [[1, 1, 0, 1, 2, 2, 0, 0], [0, 4, 4]]
    lp = _one_hot_log_probs(paths, T=8)
    assert greedy_decode(lp, torch.tensor([8, 3])) == [[1, 1, 2], [4]]


def test_greedy_decode_of_empty_and_all_blank():
    lp = _one_hot_log_probs([[0, 0], []], T=2)
    assert greedy_decode(lp, torch.tensor([2, 0])) == [[], []]


def test_labels_round_trip():
    text = "it's a b"
    assert labels_to_text(encode_text(text)) == text
    assert labels_to_text([LABELS.index("z")]) == "z"


def test_wer_counts_substitutions_and_deletions():
    # "a b c d" -> "a x c": b->x substituted, d deleted: 2 edits / 4 words
    assert wer(["a b c d"], ["a x c"]) == 2 / 4


def test_wer_is_corpus_level():
    # (1 edit + 0 edits) / (1 + 3 words) = 0.25, not the mean of 1.0 and 0.0
    assert wer(["yes", "erase c q"], ["no", "erase c q"]) == 1 / 4


def test_cer_counts_spaces():
    # "ab c" -> "abc": the space deleted: 1 edit / 4 characters
    assert cer(["ab c"], ["abc"]) == 1 / 4
    # "go" -> "no": 1 substitution; "yes" -> "yes": 0; total 1 / 5
    assert cer(["go", "yes"], ["no", "yes"]) == 1 / 5


def test_empty_references():
    assert wer([""], [""]) == 0.0
    assert wer([""], ["a"]) == float("inf")
