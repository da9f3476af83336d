"""Gradient-based growth: which dormant entries wake, and how many."""

import pytest
import torch

from symbiotic.sparsity.growth import GradientAccumulator, grow_mask, grow_masks, strongest_candidates


def test_wakes_top_gradient_dormant_entries():
    mask = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    grad = torch.tensor([[9.0, 5, 1], [4, 9, 3], [2, 6, 9]])
    # dormant |grad|: 5 1 / 4 3 / 2 6 -> ratio 0.5 of 6 wakes 3: the 6, 5 and 4
    new = grow_mask(grad, mask, 0.5, population="dormant")
    assert torch.equal(new, torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 1, 1]]))


def test_the_papers_percentile_is_over_the_whole_matrix():
    mask = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    grad = torch.tensor([[9.0, 5, 1], [4, 9, 3], [2, 6, 9]])
    # ratio 0.5 of all 9 entries (round half up: 5): 9 9 9 6 5; of those only 6 and 5 are dormant
    new = grow_mask(grad, mask, 0.5)
    assert torch.equal(new, torch.tensor([[1.0, 1, 0], [0, 1, 0], [0, 1, 1]]))


def test_never_changes_an_active_entry():
    mask = torch.tensor([[1.0, 0], [1, 0]])
    grad = torch.tensor([[0.0, 1], [0, 2]])  # active entries have zero gradient
    new = grow_mask(grad, mask, 1.0)
    # active entries stay 1 even with zero gradient; both dormant wake
    assert torch.equal(new, torch.ones(2, 2))


def test_does_not_mutate_inputs():
    mask = torch.tensor([1.0, 0, 0])
    grad = torch.tensor([1.0, 2, 3])
    grow_mask(grad, mask, 1.0)
    assert torch.equal(mask, torch.tensor([1.0, 0, 0]))
    assert torch.equal(grad, torch.tensor([1.0, 2, 3]))


def test_count_is_exact():
    mask = torch.zeros(10)
    grad = torch.arange(1.0, 11.0)
    # round half up: 0.25 * 10 = 2.5 -> 3 entries, the largest: indices 7, 8, 9
    new = grow_mask(grad, mask, 0.25)
    assert int(new.sum()) == 3
    assert new[7:].eq(1).all()


def test_ties_go_to_lower_flat_index():
    mask = torch.tensor([[0.0, 1, 0], [0, 0, 1]])
    grad = torch.full((2, 3), 2.0)
    # 4 dormant, all tied; ratio 0.5 wakes 2: flat indices 0 and 2
    new = grow_mask(grad, mask, 0.5)
    assert torch.equal(new, torch.tensor([[1.0, 1, 1], [0, 0, 1]]))


def test_zero_gradient_is_never_woken():
    mask = torch.zeros(4)
    grad = torch.tensor([0.0, 3, 0, 1])
    # ratio 1 asks for 4, but only the 2 nonzero-gradient entries may wake
    assert torch.equal(grow_mask(grad, mask, 1.0), torch.tensor([0.0, 1, 0, 1]))


def test_bool_mask_keeps_dtype():
    mask = torch.tensor([True, False, False])
    new = grow_mask(torch.tensor([0.0, 1, 2]), mask, 0.5, population="dormant")
    # 0.5 of 2 dormant = 1: index 2 (|grad| 2)
    assert new.dtype == torch.bool
    assert new.tolist() == [True, False, True]


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_ratio_outside_unit_interval_is_rejected(ratio):
    with pytest.raises(ValueError):
        grow_mask(torch.ones(2), torch.zeros(2), ratio)


def test_global_and_per_matrix_scopes_differ():
    masks = {"a": torch.zeros(2), "b": torch.zeros(2)}
    grads = {"a": torch.tensor([4.0, 3]), "b": torch.tensor([2.0, 1])}
    # global: 0.5 of 4 dormant = 2, both in "a" (4 and 3 beat 2 and 1)
    g = grow_masks(grads, masks, 0.5, scope="global")
    assert g["a"].tolist() == [1, 1] and g["b"].tolist() == [0, 0]
    # per_matrix: 0.5 of 2 = 1 in each
    p = grow_masks(grads, masks, 0.5, scope="per_matrix")
    assert p["a"].tolist() == [1, 0] and p["b"].tolist() == [1, 0]


def test_unknown_scope_is_rejected():
    with pytest.raises(ValueError):
        grow_masks({"a": torch.ones(1)}, {"a": torch.zeros(1)}, 0.5, scope="layer")


def test_accumulator_takes_magnitude_of_mean_gradient():
    acc = GradientAccumulator()
    acc.add({"w": torch.tensor([1.0, -3.0])})
    acc.add({"w": torch.tensor([3.0, 1.0])})
    # mean = [2, -1] -> |mean| = [2, 1] (mean of |g| would give [2, 2])
    assert acc.batches == 2
    assert torch.equal(acc.mean_magnitude()["w"], torch.tensor([2.0, 1.0]))


def test_accumulator_does_not_alias_the_added_gradient():
    acc = GradientAccumulator()
    g = torch.tensor([1.0])
    acc.add({"w": g})
    g += 10  # e.g. the next backward() accumulating into .grad
    assert torch.equal(acc.mean_magnitude()["w"], torch.tensor([1.0]))


def test_algorithm_2_wakes_the_candidates_with_the_largest_gradient_sums():
    # one block of 6 units: 0, 1 exist; candidates 2..5 score 0.1, 0.9, 0.5, 0.7
    scores = torch.tensor([9.0, 9.0, 0.1, 0.9, 0.5, 0.7])
    assert strongest_candidates(scores, blocks=1, old=2, needed=2).tolist() == [3, 5]


def test_algorithm_2_chooses_within_each_gate():
    # two blocks of 4 (old 2): block 0's candidates score 1, 2; block 1's 5, 3; ties to the lower index
    scores = torch.tensor([0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 5.0, 3.0])
    assert strongest_candidates(scores, blocks=2, old=2, needed=1).tolist() == [3, 6]
    tied = torch.tensor([0.0, 0.0, 4.0, 4.0])
    assert strongest_candidates(tied, blocks=1, old=2, needed=1).tolist() == [2]


def test_algorithm_2_refuses_more_than_its_candidates():
    with pytest.raises(ValueError, match="candidates"):
        strongest_candidates(torch.zeros(4), blocks=1, old=2, needed=3)
