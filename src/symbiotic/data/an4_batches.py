"""AN4 batches: utterances out of a packed split, length-bucketed batches, padded collation.

A packed split (``data/an4.py``'s ``_pack``) stores every utterance of a split in
flat tensors with offsets. :class:`Utterances` checks that layout once, so the
training loop can slice it without re-checking, and a stale or foreign file
fails with one line instead of an index error deep inside an epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from symbiotic import io
from symbiotic.data.an4 import LABELS
from symbiotic.errors import UserError

__all__ = ["Utterances", "bucketed_batches", "collate"]

KEYS = ("features", "frame_offsets", "labels", "label_offsets", "utterances")
_FIX = "rerun `dvc repro prepare_an4`"


class Utterances:
    """One packed split, checked; utterance ``i`` as ``features(i)`` and ``labels(i)``."""

    def __init__(self, packed: dict, source: str = "the packed AN4 split"):
        _check_packed(packed, source)
        self.source = source
        self._features = packed["features"]  # (sum of frames, F)
        self._frame_offsets = packed["frame_offsets"]  # (N + 1,)
        self._labels = packed["labels"]  # (sum of labels,)
        self._label_offsets = packed["label_offsets"]  # (N + 1,)
        self.utterances = list(packed["utterances"])

    @classmethod
    def load(cls, path: Path) -> "Utterances":
        """Read a split written by the prepare stage (``weights_only``: no pickled code runs)."""
        return cls(io.read_tensors(path, "packed AN4 split", _FIX), str(path))

    def head(self, n: int) -> "Utterances":
        """The first ``n`` utterances (views, no copy)."""
        n = min(n, len(self))
        frames, labels = int(self._frame_offsets[n]), int(self._label_offsets[n])
        return Utterances({"features": self._features[:frames], "frame_offsets": self._frame_offsets[:n + 1],
                           "labels": self._labels[:labels], "label_offsets": self._label_offsets[:n + 1],
                           "utterances": self.utterances[:n]}, f"the first {n} of {self.source}")

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def n_features(self) -> int:
        return self._features.shape[1]

    @property
    def frames(self) -> Tensor:
        """Frames per utterance (N,) long: what batches are bucketed by."""
        return self._frame_offsets.diff()

    @property
    def label_lengths(self) -> Tensor:
        return self._label_offsets.diff()  # (N,)

    def features(self, i: int) -> Tensor:
        """(T_i, F) MFCC frames of utterance ``i`` (a view, no copy)."""
        return self._features[self._frame_offsets[i]:self._frame_offsets[i + 1]]

    def labels(self, i: int) -> Tensor:
        """(L_i,) label ids of utterance ``i`` (blank never occurs)."""
        return self._labels[self._label_offsets[i]:self._label_offsets[i + 1]]


def _check_packed(packed, source: str) -> None:
    """Every key present, tensors of the right kind, label ids in the label set (blank excluded),
    finite features, offsets that tile the flat tensors."""
    if not isinstance(packed, dict):
        raise UserError(f"{source} holds a {type(packed).__name__}, not a dict of tensors", _FIX)
    missing = [k for k in KEYS if k not in packed]
    if missing:
        raise UserError(f"{source} lacks {', '.join(missing)}", _FIX)
    feats, labels = packed["features"], packed["labels"]
    if not isinstance(feats, Tensor) or feats.dim() != 2 or not feats.is_floating_point():
        raise UserError(f"{source}: 'features' must be a 2-D float tensor (frames, n_mfcc), "
                        f"got {_describe(feats)}", _FIX)
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        raise UserError(f"{source}: 'labels' must be a 1-D int64 tensor, got {_describe(labels)}", _FIX)
    if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) >= len(LABELS)):
        raise UserError(f"{source}: label ids run {int(labels.min())}..{int(labels.max())}, outside the "
                        f"label set (1..{len(LABELS) - 1}; 0 is the CTC blank)", _FIX)
    if not bool(torch.isfinite(feats).all()):
        bad = int((~torch.isfinite(feats)).any(dim=1).sum())
        raise UserError(f"{source}: 'features' has NaN or infinite values in {bad} frames", _FIX)
    n = len(packed["utterances"])
    _check_offsets(packed["frame_offsets"], "frame_offsets", n, feats.shape[0], source)
    _check_offsets(packed["label_offsets"], "label_offsets", n, labels.shape[0], source)


def _check_offsets(offsets, name: str, n: int, total: int, source: str) -> None:
    if not isinstance(offsets, Tensor) or offsets.dim() != 1 or offsets.dtype != torch.int64:
        raise UserError(f"{source}: '{name}' must be a 1-D int64 tensor, got {_describe(offsets)}", _FIX)
    if offsets.numel() != n + 1:
        raise UserError(f"{source}: '{name}' has {offsets.numel()} entries for {n} utterances "
                        f"(expected {n + 1})", _FIX)
    if offsets[0] != 0 or offsets[-1] != total or bool((offsets.diff() < 0).any()):
        raise UserError(f"{source}: '{name}' must rise from 0 to {total}, "
                        f"got {offsets[0].item()}..{offsets[-1].item()}", _FIX)


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"{tuple(value.shape)} {value.dtype}"
    return type(value).__name__


def bucketed_batches(frames: Tensor, batch: int, generator: torch.Generator | None,
                     shuffle: bool) -> list[list[int]]:
    """Index batches of similar length, in shuffled order when ``shuffle``.

    Sorting by length before cutting keeps padding (wasted recurrent steps, and
    frames that could bias batch-norm statistics) small; shuffling the order
    of the batches, not their contents, restores randomness between steps.
    A stable sort and the explicit generator make a seed reproduce the epoch.
    """
    if batch < 1:
        raise UserError(f"batch size {batch} is below 1", "set the batch size to an integer >= 1")
    order = torch.sort(frames, stable=True).indices.tolist()
    batches = [order[s:s + batch] for s in range(0, len(order), batch)]
    if shuffle:
        perm = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[p] for p in perm]
    return batches


def collate(utts: Utterances, index: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pad the chosen utterances into one time-major batch.

    Returns ``x`` (T_max, B, F) zero-padded, ``x_lengths`` (B,), ``targets``
    (sum L,) concatenated and ``target_lengths`` (B,): the layouts the
    recurrent layers and ``F.ctc_loss`` take without further reshaping.
    """
    feats = [utts.features(i) for i in index]
    labels = [utts.labels(i) for i in index]
    x = torch.nn.utils.rnn.pad_sequence(feats)  # (T_max, B, F), zeros after each end
    x_lengths = torch.tensor([len(f) for f in feats], dtype=torch.int64)  # (B,)
    targets = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)  # (sum L,)
    target_lengths = torch.tensor([len(t) for t in labels], dtype=torch.int64)  # (B,)
    return x.to(torch.float32), x_lengths, targets, target_lengths
