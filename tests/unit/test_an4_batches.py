"""Tests for AN4 utterance access, length-bucketed batches and padded collation."""

import pytest
import torch

from symbiotic import io
from symbiotic.data.an4_batches import Utterances, bucketed_batches, collate
from symbiotic.errors import UserError


def _packed(frames=(5, 2, 7, 3), labels=(2, 1, 3, 1), F=3) -> dict:
    """A packed split like an4._pack's; frame t of utterance i holds the value 100*i + t."""
    feats = [torch.arange(n, dtype=torch.float32)[:, None].expand(n, F) + 100 * i for i, n in enumerate(frames)]
    labs = [torch.full((n,), 3 + i, dtype=torch.int64) for i, n in enumerate(labels)]
    return {
        "features": torch.cat(feats),
        "frame_offsets": torch.tensor((0,) + frames).cumsum(0),
        "labels": torch.cat(labs),
        "label_offsets": torch.tensor((0,) + labels).cumsum(0),
        "utterances": [f"u{i}" for i in range(len(frames))],
    }


def test_utterances_slices():
    utts = Utterances(_packed())
    assert len(utts) == 4 and utts.n_features == 3
    assert utts.frames.tolist() == [5, 2, 7, 3]
    assert utts.features(2).shape == (7, 3) and utts.features(2)[0, 0] == 200
    assert utts.labels(2).tolist() == [5, 5, 5]


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("labels"), "lacks labels"),
    (lambda p: p.update(features=p["features"][:, 0]), "'features' must be a 2-D float"),
    (lambda p: p.update(labels=p["labels"].float()), "'labels' must be a 1-D int64"),
    (lambda p: p.update(frame_offsets=p["frame_offsets"][:-1]), "'frame_offsets' has 4 entries for 4"),
    (lambda p: p.update(label_offsets=p["label_offsets"] + 1), "'label_offsets' must rise from 0"),
    (lambda p: p["labels"].__setitem__(0, 29), r"label ids run 3\.\.29, outside the label set \(1\.\.28"),
    (lambda p: p["labels"].__setitem__(0, 0), r"label ids run 0\.\.6, outside the label set"),
    (lambda p: p["labels"].__setitem__(0, -1), r"label ids run -1\.\.6"),
    (lambda p: p["features"].__setitem__((3, 1), float("nan")), "NaN or infinite values in 1 frames"),
    (lambda p: p["features"].__setitem__((0, 0), float("inf")), "NaN or infinite values in 1 frames"),
])
def test_utterances_validation_names_the_problem(change, message):
    packed = _packed()
    change(packed)
    with pytest.raises(UserError, match=message) as info:
        Utterances(packed)
    assert "prepare_an4" in info.value.fix


def test_load_rejects_a_file_of_the_wrong_kind(tmp_path):
    io.save_tensors(torch.zeros(3), tmp_path / "train.pt")
    with pytest.raises(UserError, match="holds a Tensor"):
        Utterances.load(tmp_path / "train.pt")
    io.save_tensors(_packed(), tmp_path / "ok.pt")
    assert len(Utterances.load(tmp_path / "ok.pt")) == 4


def test_bucketed_batches_cover_every_index_once():
    frames = torch.tensor([9, 1, 5, 3, 7, 2, 8])
    batches = bucketed_batches(frames, 3, torch.Generator().manual_seed(0), shuffle=True)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert sorted(len(b) for b in batches) == [1, 3, 3]


def test_bucketed_batches_group_similar_lengths_unshuffled():
    frames = torch.tensor([9, 1, 5, 3, 7, 2, 8])
    # sorted: 1(1) 2(5) 3(3) | 5(2) 7(4) 8(6) | 9(0)
    assert bucketed_batches(frames, 3, None, shuffle=False) == [[1, 5, 3], [2, 4, 6], [0]]


def test_bucketed_batches_deterministic_for_a_seed():
    frames = torch.arange(40).flip(0)

    def order(seed):
        return bucketed_batches(frames, 2, torch.Generator().manual_seed(seed), shuffle=True)

    assert order(3) == order(3)
    assert order(3) != order(4)  # 20 batches: two seeds agreeing is a 1 in 20! chance


def test_collate_pads_time_major():
    utts = Utterances(_packed())
    x, x_lengths, targets, target_lengths = collate(utts, [1, 2])
    assert x.shape == (7, 2, 3) and x.dtype == torch.float32  # (T_max, B, F)
    assert x_lengths.tolist() == [2, 7] and target_lengths.tolist() == [1, 3]
    assert targets.tolist() == [4, 5, 5, 5]
    assert x[:2, 0, 0].tolist() == [100, 101] and x[2:, 0].abs().sum() == 0  # zero padding
    assert x[:, 1, 0].tolist() == [200 + t for t in range(7)]
