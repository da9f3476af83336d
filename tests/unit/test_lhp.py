"""Tests for LHP detection on synthetic latency curves."""

import json
import random

import pytest

from symbiotic.errors import UserError
from symbiotic.hardware.lhp import (
    choose_lhp,
    hysteresis_bins,
    lhp_mask,
    pass_agreement,
    redundancy,
    snap_up,
    summarize,
)

DIMS = list(range(8, 72, 4))  # 16 points


def lhps(dims, mask):
    return [d for d, keep in zip(dims, mask) if keep]


def test_monotone_curve_every_point_is_lhp():
    lat = [[1e-4 * d for d in DIMS]]
    mask = lhp_mask(DIMS, lat, tol=0.0)
    assert all(mask)
    assert redundancy(mask) == 0.0


def test_staircase_tol0_keeps_right_end_of_each_plateau():
    dims = list(range(1, 13))
    lat = [[1.0 + (d - 1) // 4 for d in dims]]  # plateaus 1..4, 5..8, 9..12
    assert lhps(dims, lhp_mask(dims, lat, tol=0.0)) == [4, 8, 12]


def test_staircase_with_tolerance_keeps_equal_points():
    dims = list(range(1, 13))
    lat = [[1.0 + (d - 1) // 4 for d in dims]]
    assert all(lhp_mask(dims, lat, tol=0.05))


def test_dip_dominates_points_before_it():
    dims = list(range(56, 72))
    base = [1.0 + 0.01 * (d - 56) for d in dims]
    lat = [b * (0.7 if d == 64 else 1.0) for d, b in zip(dims, base)]
    mask = lhp_mask(dims, [lat], tol=0.05)
    dominated = [d for d, keep in zip(dims, mask) if not keep]
    assert set(range(60, 64)) <= set(dominated)
    assert 64 in lhps(dims, mask)
    assert all(mask[dims.index(d)] for d in range(65, 72))


def test_largest_dim_always_lhp():
    lat = [[5.0] + [1.0] * (len(DIMS) - 1)]
    assert lhp_mask(DIMS, lat, tol=0.0)[-1]


def _dip_curve():
    """Latency growing 20% per step, with dips to half at 32 and 64.

    A dip is 0.6x, 0.72x and 0.86x the latency of the three dims before it and
    1.04x the fourth, so every ratio sits well clear of a 5% tolerance band
    widened by +-2% noise on both points: the true LHP set is unambiguous.
    """
    out = []
    for k, d in enumerate(DIMS):
        lat = 1e-3 * 1.2**k
        if d in (32, 64):
            lat *= 0.5
        out.append(lat)
    return out


def test_noisy_passes_below_tolerance_recover_true_lhps():
    rng = random.Random(0)
    true = _dip_curve()
    truth = [8, 12, 16, 32, 36, 40, 44, 48, 64, 68]
    assert lhps(DIMS, lhp_mask(DIMS, [true], tol=0.05)) == truth
    passes = [[x * (1 + rng.uniform(-0.02, 0.02)) for x in true] for _ in range(5)]
    assert lhps(DIMS, lhp_mask(DIMS, passes, tol=0.05)) == truth
    assert pass_agreement(DIMS, passes, tol=0.05) == 1.0


def test_order_flip_in_one_pass_does_not_dominate():
    dims = [8, 12, 16]
    good = [1.0, 2.0, 3.0]
    flipped = [1.0, 2.0, 1.5]  # one noisy pass: 16 looks faster than 12
    passes = [good, good, flipped]
    assert all(lhp_mask(dims, passes, tol=0.05))
    assert pass_agreement(dims, passes, tol=0.05) < 1.0
    # The same flip in every pass is real and does dominate 12.
    assert lhp_mask(dims, [flipped] * 3, tol=0.05) == [True, False, True]


def test_agreement_single_pass_is_one():
    assert pass_agreement(DIMS, [_dip_curve()], tol=0.0) == 1.0


def test_redundancy_arithmetic():
    assert redundancy([True, False, False, True]) == 0.5
    assert redundancy([True]) == 0.0
    assert redundancy([False, False, False, True]) == pytest.approx(0.75)


def test_hysteresis_bins_point_to_faster_lhp():
    lat = _dip_curve()
    mask = lhp_mask(DIMS, [lat], tol=0.0)
    bins = hysteresis_bins(DIMS, lat, mask, top=3)
    assert len(bins) == 3
    ratios = [b["ratio"] for b in bins]
    assert ratios == sorted(ratios, reverse=True)
    for b in bins:
        assert b["faster_dim"] in (32, 64) and b["dim"] in range(b["faster_dim"] - 12, b["faster_dim"])
        assert b["ratio"] == pytest.approx(b["latency_s"] / b["faster_latency_s"] - 1)
        assert b["ratio"] > 0


def test_choose_and_snap_up():
    dims = [8, 12, 16, 20, 24]
    lat = [1.0, 3.0, 2.0, 2.5, 2.4]
    mask = [True, False, True, False, True]
    assert snap_up(dims, mask, 9) == 16
    assert snap_up(dims, mask, 16) == 16
    assert choose_lhp(dims, lat, mask, 9) == 16
    assert choose_lhp(dims, lat, mask, 17) == 24
    # Ties prefer the smaller dim.
    assert choose_lhp(dims, [1.0, 3.0, 2.0, 2.5, 2.0], mask, 9, rule="fastest") == 16


def test_nearest_lhp_is_the_papers_corresponding_one_even_when_a_larger_is_faster():
    dims, mask = [8, 12, 16, 20, 24], [True, False, True, False, True]
    lat = [1.0, 3.0, 2.0, 2.5, 1.5]  # 24 is faster than 16
    assert choose_lhp(dims, lat, mask, 9) == 16
    assert choose_lhp(dims, lat, mask, 9, rule="fastest") == 24


def test_no_lhp_is_chosen_above_the_ceiling():
    dims, mask = [8, 12, 16, 20, 24], [True, False, True, False, True]
    lat = [1.0, 3.0, 2.0, 2.5, 1.5]
    assert choose_lhp(dims, lat, mask, 9, at_most=20, rule="fastest") == 16
    assert choose_lhp(dims, lat, mask, 17, at_most=20) is None


def test_beyond_grid_is_user_error():
    mask = [True, True]
    with pytest.raises(UserError, match="grid"):
        choose_lhp([8, 16], [1.0, 2.0], mask, 17)
    with pytest.raises(UserError, match="grid"):
        snap_up([8, 16], mask, 17)


def test_malformed_profile_rejected():
    with pytest.raises(ValueError):
        lhp_mask([8, 8], [[1.0, 2.0]], tol=0.0)
    with pytest.raises(ValueError):
        lhp_mask([8, 16], [[1.0]], tol=0.0)
    with pytest.raises(ValueError):
        lhp_mask([8, 16], [[1.0, 2.0]], tol=1.0)


def test_summarize_is_json_ready():
    rng = random.Random(1)
    passes = [[x * (1 + rng.uniform(-0.01, 0.01)) for x in _dip_curve()] for _ in range(3)]
    s = summarize(DIMS, passes, tol=0.05)
    json.loads(json.dumps(s))
    assert s["n_points"] == len(DIMS)
    assert s["lhps"][-1] == DIMS[-1]
    assert s["redundancy"] == pytest.approx(1 - len(s["lhps"]) / len(DIMS))
    assert len(s["median_latency_s"]) == len(DIMS)
    assert s["tolerance"] == 0.05
    assert 0 < s["agreement"] <= 1
    assert s["bins"]


def test_split_half_agreement_compares_even_and_odd_passes():
    from symbiotic.hardware.lhp import split_half_agreement

    dims = [1, 2, 3]
    # Even passes (0, 2): 2 is slower than 3 -> LHPs {1, 3}; odd passes (1, 3): monotone -> {1, 2, 3}.
    passes = [[1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]]
    assert split_half_agreement(dims, passes, 0.0) == 2 / 3  # |{1,3}| / |{1,2,3}|
    assert split_half_agreement(dims, passes[:1], 0.0) == 1.0


def test_mann_whitney_detects_a_consistent_dip_and_ignores_noise():
    import random

    from symbiotic.hardware.lhp import lhp_mask

    rng = random.Random(0)
    dims = [10, 20, 30, 40]
    true = [1.0, 2.0, 1.5, 3.0]  # 20 is 25% slower than 30: a real hysteresis bin
    passes = [[t * (1 + rng.uniform(-0.1, 0.1)) for t in true] for _ in range(10)]
    assert lhp_mask(dims, passes, 0.05, "mann_whitney") == [True, False, True, True]
    flat = [[1.0 + rng.uniform(-0.1, 0.1) for _ in dims] for _ in range(10)]
    assert all(lhp_mask(dims, flat, 0.05, "mann_whitney"))  # noise alone dominates nothing
