"""Magnitude pruning decisions: weights, rows/columns and per-gate groups."""

import pytest
import torch

from symbiotic.sparsity.pruning import (
    count_for_ratio,
    prune_mask,
    prune_masks,
    smallest_units,
    smallest_units_per_group,
)


def test_count_rounds_half_up():
    assert count_for_ratio(0.25, 10) == 3  # 2.5 -> 3 (Python's round gives 2)
    assert count_for_ratio(0.3, 10) == 3  # 3.0000000000000004 -> 3
    assert count_for_ratio(0.5, 1) == 1


def test_removes_exactly_the_smallest_active_magnitudes():
    w = torch.tensor([[0.1, -5, 0.3], [2, -0.2, 4], [0.05, 1, 3]])
    mask = torch.ones(3, 3)
    mask[2, 0] = 0  # 0.05 is already dormant
    # 8 active, ratio 0.25 -> 2: |0.1| and |-0.2| (not the dormant 0.05)
    new = prune_mask(w, mask, 0.25)
    expected = mask.clone()
    expected[0, 0] = 0
    expected[1, 1] = 0
    assert torch.equal(new, expected)


def test_keeps_earlier_zeros():
    w = torch.tensor([100.0, 1, 2])
    mask = torch.tensor([0.0, 1, 1])
    # ratio 0 removes nothing; the dormant large weight stays dormant
    assert torch.equal(prune_mask(w, mask, 0.0), mask)
    assert prune_mask(w, mask, 1.0).tolist() == [0, 0, 0]


def test_does_not_mutate_inputs():
    mask = torch.ones(3)
    prune_mask(torch.tensor([1.0, 2, 3]), mask, 0.5)
    assert torch.equal(mask, torch.ones(3))


def test_ties_go_to_lower_flat_index():
    # 4 equal weights, ratio 0.5 -> indices 0 and 1
    assert prune_mask(torch.ones(4), torch.ones(4), 0.5).tolist() == [0, 0, 1, 1]


def test_global_and_per_matrix_scopes_differ():
    weights = {"a": torch.tensor([1.0, 2]), "b": torch.tensor([3.0, 4])}
    masks = {"a": torch.ones(2), "b": torch.ones(2)}
    # global: 0.5 of 4 = 2, both from "a"
    g = prune_masks(weights, masks, 0.5, scope="global")
    assert g["a"].tolist() == [0, 0] and g["b"].tolist() == [1, 1]
    # per_matrix: 1 each, the smaller of each
    p = prune_masks(weights, masks, 0.5, scope="per_matrix")
    assert p["a"].tolist() == [0, 1] and p["b"].tolist() == [0, 1]


def test_smallest_units_never_picks_inactive():
    scores = torch.tensor([0.0, 5, 1, 2])
    active = torch.tensor([False, True, True, True])
    # unit 0 has the smallest score but is gone: pick 2 and 3
    assert smallest_units(scores, active, count=2).tolist() == [2, 3]


def test_smallest_units_by_ratio():
    scores = torch.tensor([4.0, 3, 2, 1])
    # 0.5 of 4 active = 2: units 3 and 2, returned ascending
    assert smallest_units(scores, torch.ones(4, dtype=torch.bool), ratio=0.5).tolist() == [2, 3]


def test_smallest_units_ties_go_to_lower_index():
    assert smallest_units(torch.ones(4), torch.ones(4, dtype=torch.bool), count=1).tolist() == [0]


def test_smallest_units_rejects_more_than_active():
    with pytest.raises(ValueError):
        smallest_units(torch.ones(3), torch.tensor([True, False, False]), count=2)


def test_smallest_units_needs_exactly_one_of_ratio_and_count():
    with pytest.raises(ValueError):
        smallest_units(torch.ones(2), torch.ones(2, dtype=torch.bool), ratio=0.5, count=1)


def test_per_group_removes_same_count_from_each_block():
    scores = torch.tensor([1.0, 2, 3, 4, 8, 7, 6, 5])
    active = torch.ones(8, dtype=torch.bool)
    # 2 groups of 4; 1 each: unit 0 (score 1) and unit 7 (score 5)
    assert smallest_units_per_group(scores, active, groups=2, count=1).tolist() == [0, 7]


def test_per_group_ratio_uses_smallest_block_and_skips_inactive():
    scores = torch.tensor([1.0, 2, 3, 4, 0, 7, 6, 5])
    active = torch.tensor([True, True, True, True, False, True, True, True])
    # fewest active in a block = 3; 0.5 * 3 = 1.5 -> 2 from each block:
    # block 0 -> 0, 1; block 1 -> 7 (5), 6 (6); unit 4 is inactive
    assert smallest_units_per_group(scores, active, groups=2, ratio=0.5).tolist() == [0, 1, 6, 7]


def test_per_group_rejects_uneven_split():
    with pytest.raises(ValueError):
        smallest_units_per_group(torch.ones(5), torch.ones(5, dtype=torch.bool), groups=2, count=1)
