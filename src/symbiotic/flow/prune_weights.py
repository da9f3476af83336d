"""Step (d): magnitude weight pruning with rollback and halving (p_w starts at 70%)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symbiotic.config import ranged
from symbiotic.flow.common import prune_with_rollback, recurrent_density, recurrent_masks, seed_everything
from symbiotic.sparsity.masks import apply_masks
from symbiotic.sparsity.pruning import prune_masks
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import HalvingSchedule, Threshold


@dataclass(frozen=True)
class PruneWeightsConfig:
    ratio: float = ranged(0.7, lo=0.0, hi=0.99)  # p_w: share of active weights removed per iteration
    min_ratio: float = ranged(0.05, lo=0.0, hi=1.0)  # stop once halving goes below this
    retrain_epochs: int = ranged(1, lo=0, hi=1000)
    max_iterations: int = ranged(6, lo=0, hi=10000)  # budget: the stage always terminates
    scope: str = ranged("per_matrix", choices=("per_matrix", "global"))


def prune_weights(task, model, trainer: Trainer, cfg: PruneWeightsConfig, threshold: Threshold,
                  split: str, resume: Resume) -> list[dict]:
    """Prune the smallest |w| of the recurrent matrices, retrain, roll back on failure."""
    seed_everything(task.cfg.seed)  # dropout during retraining: the same run every time
    schedule = HalvingSchedule(cfg.ratio, cfg.min_ratio, single_unit_finish=False)

    def act(schedule):
        pairs = recurrent_masks(model)
        if all(int(m.sum()) <= 1 for _, m in pairs.values()):
            return None
        new = prune_masks({n: w.detach() for n, (w, _) in pairs.items()},
                          {n: m for n, (_, m) in pairs.items()}, schedule.ratio, scope=cfg.scope)
        with torch.no_grad():
            for n, (_, mask) in pairs.items():
                mask.copy_(new[n])
        apply_masks(model)
        return {"ratio": schedule.ratio, "density": recurrent_density(model)}

    return prune_with_rollback(trainer, schedule, threshold, split, act, cfg.retrain_epochs,
                               cfg.max_iterations, resume, dict)
