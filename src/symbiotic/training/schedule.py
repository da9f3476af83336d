"""Small control objects for the training loop: ratio, criterion, learning rate.

Each is a plain state machine with no knowledge of models or data, so the
pruning loop (Algorithm 1) reads as: ask the schedule how much to remove, try
it, judge it with the threshold, report success or failure back. All state is
plain Python (``state_dict``/``load_state_dict``) so a run can be resumed.
"""

from __future__ import annotations

import math
from typing import Any

from symbiotic.sparsity.pruning import count_for_ratio

__all__ = ["HalvingSchedule", "Threshold", "PlateauLR"]


class HalvingSchedule:
    """Algorithm 1's ratio control: halve on failure, finish with single units.

    Phases, in order (``phase`` names the current one):

    ``"ratio"``
        :meth:`next_step` returns ``count_for_ratio(ratio, n_active)``
        (capped so that ``min_active`` units remain). :meth:`success` keeps
        the ratio; :meth:`failure` halves it. When the ratio falls below
        ``minimum`` the schedule moves to ``"single"`` (or straight to
        ``"done"`` when ``single_unit_finish`` is false).
        If a ratio step would remove at most one unit (``ratio * n_active``
        rounds to 0 or 1) the schedule moves to ``"single"`` at once: a
        one-unit ratio step IS a single-unit step, and halving after its
        failure could only retry the same single unit.
    ``"single"``
        The paper's finishing phase, "remove single rows and columns until
        the threshold fails": every step removes 1 unit; success continues,
        the first failure moves to ``"done"``.
    ``"done"``
        :meth:`next_step` returns 0 and ``done`` is true.

    It always terminates when the caller passes the true active count: in
    ``"ratio"`` every failure halves the ratio (at most
    ``log2(initial / minimum) + 1`` failures) and every success removes at
    least one of finitely many units; in ``"single"`` each success removes one
    unit and the first failure ends it; once ``n_active <= min_active`` there
    is nothing left to remove and the schedule is done.
    """

    def __init__(self, initial: float, minimum: float, min_active: int = 1, single_unit_finish: bool = True):
        if not 0.0 < initial <= 1.0:
            raise ValueError(f"initial ratio must be in (0, 1], got {initial}")
        if not 0.0 < minimum:
            raise ValueError(f"minimum ratio must be > 0 (or halving never ends), got {minimum}")
        if min_active < 0:
            raise ValueError(f"min_active must be >= 0, got {min_active}")
        self.initial = float(initial)
        self.minimum = float(minimum)
        self.min_active = int(min_active)
        self.single_unit_finish = bool(single_unit_finish)
        self._ratio = float(initial)
        self._phase = "ratio"
        self._after_ratio()

    @property
    def ratio(self) -> float:
        """The current ratio (meaningful in the ``"ratio"`` phase)."""
        return self._ratio

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def done(self) -> bool:
        return self._phase == "done"

    def _after_ratio(self) -> None:
        if self._phase == "ratio" and self._ratio < self.minimum:
            self._phase = "single" if self.single_unit_finish else "done"

    def next_step(self, n_active: int) -> int:
        """How many of ``n_active`` units to remove next (0 once done)."""
        if n_active < 0:
            raise ValueError(f"n_active must be >= 0, got {n_active}")
        room = n_active - self.min_active
        if room <= 0:
            self._phase = "done"
        if self._phase == "done":
            return 0
        if self._phase == "ratio":
            count = min(count_for_ratio(self._ratio, n_active), room)
            if count > 1:
                return count
            if not self.single_unit_finish:
                return 1
            self._phase = "single"
        return 1

    def success(self) -> None:
        """The last step passed the threshold: keep going at the same ratio."""

    def failure(self) -> None:
        """The last step failed (and was rolled back): halve, or finish."""
        if self._phase == "ratio":
            self._ratio /= 2.0
            self._after_ratio()
        elif self._phase == "single":
            self._phase = "done"

    def state_dict(self) -> dict[str, Any]:
        return {"ratio": self._ratio, "phase": self._phase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["phase"] not in ("ratio", "single", "done"):
            raise ValueError(f"unknown phase {state['phase']!r}")
        self._ratio = float(state["ratio"])
        self._phase = str(state["phase"])


class Threshold:
    """The accuracy criterion a compressed model must still meet.

    With ``higher_is_worse`` (perplexity, WER) a value passes when
    ``value <= limit * (1 + slack)``; otherwise (accuracy) when
    ``value >= limit * (1 - slack)``. NaN never passes, so a diverged run is
    always rolled back.
    """

    def __init__(self, limit: float, higher_is_worse: bool = True, slack: float = 0.0):
        if not 0.0 <= slack or math.isnan(slack):
            raise ValueError(f"slack must be >= 0, got {slack}")
        self.limit = float(limit)
        self.higher_is_worse = bool(higher_is_worse)
        self.slack = float(slack)

    @property
    def bound(self) -> float:
        """The worst value that still passes."""
        if self.higher_is_worse:
            return self.limit * (1.0 + self.slack)
        return self.limit * (1.0 - self.slack)

    def ok(self, value: float) -> bool:
        value = float(value)
        if math.isnan(value):
            return False
        return value <= self.bound if self.higher_is_worse else value >= self.bound

    def __repr__(self) -> str:
        op = "<=" if self.higher_is_worse else ">="
        return f"Threshold(value {op} {self.bound:g})"


class PlateauLR:
    """Divide the learning rate by ``factor`` when validation stops improving.

    Each :meth:`step` takes one validation result. A strictly better value
    than the best so far is an improvement; after more than ``patience``
    consecutive non-improving steps the rate is divided by ``factor`` (never
    below ``min_lr``) and the count starts again. ``patience=0`` divides on
    the first step that does not improve. NaN never counts as an improvement.
    """

    def __init__(
        self,
        lr: float,
        factor: float = 10.0,
        patience: int = 0,
        min_lr: float = 0.0,
        higher_is_worse: bool = True,
    ):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not factor >= 1:  # 1: the rate never changes on a plateau (a fixed schedule decays it)
            raise ValueError(f"factor must be >= 1, got {factor}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_lr = float(min_lr)
        self.higher_is_worse = bool(higher_is_worse)
        self.lr = float(lr)
        self.best: float | None = None
        self.bad_steps = 0
        self.reductions = 0

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.higher_is_worse else value > self.best

    @property
    def at_min(self) -> bool:
        """True once the rate cannot fall further (a natural stopping point)."""
        return self.lr <= self.min_lr

    def step(self, val_metric: float) -> float:
        """Record one validation result; returns the (possibly lowered) rate."""
        value = float(val_metric)
        if self._improves(value):
            self.best = value
            self.bad_steps = 0
            return self.lr
        self.bad_steps += 1
        if self.bad_steps > self.patience:
            new_lr = max(self.lr / self.factor, self.min_lr)
            if new_lr < self.lr:
                self.reductions += 1
            self.lr = new_lr
            self.bad_steps = 0
        return self.lr

    def apply(self, optimizer) -> None:
        """Set the current rate on every parameter group of ``optimizer``."""
        for group in optimizer.param_groups:
            group["lr"] = self.lr

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "best": self.best, "bad_steps": self.bad_steps, "reductions": self.reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = float(state["lr"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_steps = int(state["bad_steps"])
        self.reductions = int(state["reductions"])
