"""Speech recognition metrics: greedy CTC decoding, word and character error rates.

Error rates are corpus-level (total edits / total reference length), not a
mean of per-utterance rates, so short utterances do not weigh as much as
long ones: the convention of DeepSpeech2 and most ASR reports.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchaudio.functional import edit_distance

from symbiotic.data.an4 import LABELS

__all__ = ["greedy_decode", "labels_to_text", "wer", "cer", "BLANK_ID"]

BLANK_ID = 0  # LABELS[0] is the CTC blank


def greedy_decode(log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
    """Best path per utterance: argmax per frame, repeats collapsed, blanks dropped.

    log_probs (T, B, C), lengths (B,). Frames at or past an utterance's length
    are padding and never decoded. Collapsing happens before dropping blanks,
    so a blank between two equal labels keeps both ("a_a" -> "aa").
    """
    best = log_probs.argmax(dim=2).t().cpu()  # (B, T)
    return [_collapse(best[b, : int(n)]) for b, n in enumerate(lengths.tolist())]


def _collapse(path: Tensor) -> list[int]:
    """(T,) frame labels -> label ids (repeats merged, blanks removed)."""
    if path.numel() == 0:
        return []
    keep = torch.ones_like(path, dtype=torch.bool)
    keep[1:] = path[1:] != path[:-1]
    path = path[keep]
    return path[path != BLANK_ID].tolist()


def labels_to_text(ids: Sequence[int]) -> str:
    return "".join(LABELS[i] for i in ids)


def wer(refs: list[str], hyps: list[str]) -> float:
    """Word error rate: word edits summed over utterances / reference words."""
    return _error_rate([r.split() for r in refs], [h.split() for h in hyps])


def cer(refs: list[str], hyps: list[str]) -> float:
    """Character error rate, spaces included (a missed word boundary is an error)."""
    return _error_rate([list(r) for r in refs], [list(h) for h in hyps])


def _error_rate(refs: list[list[str]], hyps: list[list[str]]) -> float:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = sum(len(r) for r in refs)
    if total == 0:
        # No reference tokens: any hypothesis token is an error without a rate; 0 if none.
        return 0.0 if all(not h for h in hyps) else float("inf")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total
