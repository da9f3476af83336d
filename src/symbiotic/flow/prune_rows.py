"""Step (b): magnitude-based row/column pruning (the paper's Algorithm 1).

Rows and columns are pruned as whole units (an embedding dimension, a hidden
unit, a gate-hidden neuron): removing a unit deletes every row and column that
touches it, in all four gates and on the recurrent path, so the result thins
into a physically smaller dense model. Units are ranked by the sum of |w| over
their rows and columns in the control-gate matrices (``score: all`` adds every other
tensor a unit touches); gate-hidden neurons are removed in equal numbers from
each gate so that the four gates keep one width.
"""

from __future__ import annotations

from dataclasses import dataclass

from symbiotic.config import ranged
from symbiotic.flow.common import NONE_ACCEPTED, prune_with_rollback, seed_everything
from symbiotic.sparsity.pruning import count_for_ratio, smallest_units_per_group
from symbiotic.sparsity.units import SCORE_RULES, active_units, dims, remove_units, unit_key, unit_keys, unit_scores
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import HalvingSchedule, Threshold

KINDS = ("embed", "hidden", "gate")


@dataclass(frozen=True)
class PruneRowsConfig:
    ratio: float = ranged(0.2, lo=0.0, hi=0.95)  # p_r = p_c: share of active units removed per iteration
    min_ratio: float = ranged(0.02, lo=0.0, hi=1.0)  # below it, finish with single units
    single_unit_finish: bool = True
    retrain_epochs: int = ranged(1, lo=0, hi=1000)
    max_iterations: int = ranged(8, lo=0, hi=10000)  # budget: the stage always terminates
    if_none_accepted: str = ranged("fail", choices=NONE_ACCEPTED)  # all rolled back: fail or pass on
    kinds: tuple[str, ...] = ranged(KINDS, choices=None)
    # what ranks units: "control" sums |w| over the control-gate matrices (the paper's Algorithm 1),
    # "all" over every tensor a unit touches (embedding and decoder dominate there)
    score: str = ranged("control", choices=SCORE_RULES)

    def __post_init__(self):
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            from symbiotic.errors import UserError

            raise UserError(f"prune_rows kinds has {sorted(unknown)[0]!r}", f"use some of: {', '.join(KINDS)}")


def _remove_smallest(model, key: str, phase: str, ratio: float, rule: str = "control") -> int:
    """Remove the smallest-|w| units of ``key``, as many from each block (gate); returns the count."""
    scores, active = unit_scores(model, key, rule), active_units(model, key)
    group = unit_key(model, key)
    fewest = int(group.by_block(active).sum(1).min())  # active units of the thinnest block
    count = 1 if phase == "single" else max(1, count_for_ratio(ratio, fewest))
    if fewest - count < 1:
        return 0
    index = smallest_units_per_group(scores, active, group.blocks, count=count)
    remove_units(model, key, index)
    return len(index)


def prune_rows(task, model, trainer: Trainer, cfg: PruneRowsConfig, threshold: Threshold, split: str,
               resume: Resume) -> list[dict]:
    """Algorithm 1 on ``model`` in place; returns the iteration log."""
    seed_everything(task.cfg.seed)  # dropout during retraining: the same run every time
    keys = [k for k in unit_keys(model) if k.split(".")[0] in cfg.kinds]
    schedule = HalvingSchedule(cfg.ratio, cfg.min_ratio, single_unit_finish=cfg.single_unit_finish)

    def act(schedule):
        smallest = min(int(active_units(model, k).sum()) for k in keys)
        if schedule.next_step(smallest) == 0:
            return None
        record = {"phase": schedule.phase, "ratio": schedule.ratio}
        for key in keys:
            record[f"removed_{key}"] = _remove_smallest(model, key, schedule.phase, schedule.ratio, cfg.score)
        record.update({f"dim_{k}": v for k, v in dims(model).items()})
        return record

    return prune_with_rollback(trainer, schedule, threshold, split, act, cfg.retrain_epochs,
                               cfg.max_iterations, resume, dict)
