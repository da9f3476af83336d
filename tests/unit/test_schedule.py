"""Ratio halving, accuracy threshold and plateau learning-rate control."""

import math

import pytest

from symbiotic.training.schedule import HalvingSchedule, PlateauLR, Threshold


def test_failure_halves_the_ratio():
    s = HalvingSchedule(0.2, minimum=0.01)
    seen = [s.ratio]
    for _ in range(4):
        s.failure()
        seen.append(s.ratio)
    assert seen == [0.2, 0.1, 0.05, 0.025, 0.0125]
    assert s.phase == "ratio"


def test_success_keeps_the_ratio():
    s = HalvingSchedule(0.2, minimum=0.01)
    s.success()
    assert s.ratio == 0.2


def test_ratio_below_minimum_moves_to_single_units():
    s = HalvingSchedule(0.02, minimum=0.015)
    s.failure()  # 0.01 < 0.015
    assert s.phase == "single"
    assert s.next_step(1000) == 1


def test_ratio_below_minimum_without_finish_is_done():
    s = HalvingSchedule(0.02, minimum=0.015, single_unit_finish=False)
    s.failure()
    assert s.done
    assert s.next_step(1000) == 0


def test_next_step_removes_ratio_of_active():
    assert HalvingSchedule(0.2, minimum=0.01).next_step(100) == 20


def test_one_unit_ratio_step_becomes_single_phase():
    s = HalvingSchedule(0.2, minimum=0.01)
    # 0.2 * 5 = 1 unit: a single-unit step, so the finishing phase starts
    assert s.next_step(5) == 1
    assert s.phase == "single"


def test_single_phase_ends_at_first_failure():
    s = HalvingSchedule(0.2, minimum=0.01)
    s.next_step(3)
    s.success()
    assert s.next_step(2) == 1
    s.failure()
    assert s.done
    assert s.next_step(2) == 0


def test_never_goes_below_min_active():
    s = HalvingSchedule(1.0, minimum=0.01, min_active=2)
    # ratio 1 of 10 would remove all; capped at 10 - 2 = 8
    assert s.next_step(10) == 8
    assert s.next_step(2) == 0
    assert s.done


def _run(schedule, n, passes, limit=10_000):
    """Drive the schedule like Algorithm 1; `passes(remaining)` is the threshold."""
    for _ in range(limit):
        k = schedule.next_step(n)
        if schedule.done:
            return n
        if passes(n - k):
            n -= k
            schedule.success()
        else:
            schedule.failure()
    raise AssertionError("schedule did not terminate")


def test_finishes_exactly_at_a_monotone_threshold():
    # removing units is fine while at least 37 remain: the single-unit finish
    # must land on exactly 37
    assert _run(HalvingSchedule(0.5, minimum=0.01), 100, lambda r: r >= 37) == 37


def test_terminates_when_every_step_fails():
    assert _run(HalvingSchedule(0.5, minimum=1e-6), 100, lambda r: False) == 100


def test_terminates_when_every_step_succeeds():
    assert _run(HalvingSchedule(0.5, minimum=1e-6, min_active=1), 100, lambda r: True) == 1


def test_schedule_state_round_trips():
    s = HalvingSchedule(0.2, minimum=0.01)
    s.failure()
    t = HalvingSchedule(0.2, minimum=0.01)
    t.load_state_dict(s.state_dict())
    assert (t.ratio, t.phase) == (0.1, "ratio")


@pytest.mark.parametrize("initial, minimum", [(0.0, 0.1), (1.5, 0.1), (0.5, 0.0)])
def test_schedule_rejects_bad_ratios(initial, minimum):
    with pytest.raises(ValueError):
        HalvingSchedule(initial, minimum)


def test_threshold_higher_is_worse_with_slack():
    t = Threshold(100.0, slack=0.05)
    assert t.ok(105.0)  # 100 * 1.05 = 105 still passes
    assert not t.ok(105.1)


def test_threshold_lower_is_worse():
    t = Threshold(0.9, higher_is_worse=False)
    assert t.ok(0.9) and not t.ok(0.89)


def test_threshold_nan_fails():
    assert not Threshold(100.0).ok(math.nan)


def test_plateau_divides_by_ten_after_no_improvement():
    p = PlateauLR(1.0)
    assert p.step(10.0) == 1.0  # first value is the best so far
    assert p.step(9.0) == 1.0  # improved
    assert p.step(9.5) == pytest.approx(0.1)  # no improvement, patience 0


def test_plateau_waits_for_patience():
    p = PlateauLR(1.0, patience=1)
    p.step(10.0)
    assert p.step(10.0) == 1.0  # 1 bad step, patience 1
    assert p.step(11.0) == pytest.approx(0.1)  # 2 bad steps


def test_plateau_respects_min_lr():
    p = PlateauLR(1.0, min_lr=0.5)
    p.step(1.0)
    assert p.step(2.0) == 0.5
    assert p.at_min


def test_plateau_state_is_plain_python_and_round_trips():
    p = PlateauLR(1.0)
    p.step(3.0)
    p.step(4.0)
    state = p.state_dict()
    assert all(isinstance(v, (int, float, type(None))) for v in state.values())
    q = PlateauLR(1.0)
    q.load_state_dict(state)
    assert q.state_dict() == state


def test_plateau_patience_tolerates_that_many_non_improving_steps():
    from symbiotic.training.schedule import PlateauLR

    plateau = PlateauLR(1.0, factor=10.0, patience=2)
    rates = [plateau.step(v) for v in (5.0, 6.0, 6.0, 6.0)]
    assert rates == [1.0, 1.0, 1.0, 0.1]  # divided on the third step without improvement
