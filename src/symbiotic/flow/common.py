"""What the steps share: seeding, gradient statistics and Algorithm 1's prune-retrain-rollback loop."""

from __future__ import annotations

import math
from typing import Callable

import torch

from symbiotic.errors import UserError
from symbiotic.sparsity.growth import GradientAccumulator
from symbiotic.training import distributed
from symbiotic.training.loop import Diverged
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import HalvingSchedule, Threshold


# What a pruning stage does when the threshold rejects every iteration: stop with an error (the
# default: its output would be the input under the pruned name) or pass the input on, saying so.
NONE_ACCEPTED = ("fail", "pass_through")


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout) and return a generator for explicit draws. The draws
    are every rank's alike (masks, growth batches); dropout differs per rank of several
    processes, as each rank's share of the batch is other data (rank 0: the one-process seed)."""
    torch.manual_seed(seed + 7919 * distributed.current().rank)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def accumulated_gradients(task, model, names: list[str], batches: int, seed: int) -> GradientAccumulator:
    """The gradients of the named parameters over ``batches`` of the task's gradient losses;
    with several processes each batch's gradient is the ranks' shares' weighted mean."""
    acc = GradientAccumulator()
    params = dict(model.named_parameters())
    world = distributed.current()
    for loss, weight in task.gradient_losses(model, batches, seed=seed):
        model.zero_grad(set_to_none=True)
        loss.backward()
        world.reduce([params[n].grad for n in names], weight)
        acc.add({n: params[n].grad for n in names})
    model.zero_grad(set_to_none=True)
    return acc


def prune_with_rollback(trainer, schedule: HalvingSchedule, threshold: Threshold, split: str,
                        act: Callable[[HalvingSchedule], dict | None], retrain_epochs: int,
                        max_iterations: int, resume: Resume, extra_state: Callable[[], dict]) -> list[dict]:
    """The paper's Algorithm 1 control loop, shared by row/column and weight pruning.

    Each iteration: remember everything, let ``act`` prune (it returns a record
    of what it did, or None when nothing is left to prune), retrain, score; if
    the score misses the threshold, restore weights, masks and optimizer bit for
    bit and let the schedule halve the ratio. ``max_iterations`` bounds the
    loop whatever the schedule does. State is saved after every iteration.
    """
    model, task = trainer.model, trainer.task
    log: list[dict] = []
    saved = resume.load()
    if saved:
        model.load_state_dict(saved["model"])
        trainer.load_state_dict(saved["trainer"])
        schedule.load_state_dict(saved["schedule"])
        log = list(saved["log"])
    while not schedule.done and len(log) < max_iterations:
        snap = trainer.snapshot()
        record = act(schedule)
        if record is None:
            break
        diverged = _retrain(trainer, retrain_epochs, f"iteration {len(log)}")
        score = math.nan if diverged else task.score(model, split)
        ok = threshold.ok(score)
        log.append({"iteration": len(log), **record, split: score, "accepted": bool(ok),
                    "finite": math.isfinite(score), "diverged": diverged})
        if ok:
            schedule.success()
        else:
            trainer.restore(snap)
            schedule.failure()
        resume.save({"model": model.state_dict(), "trainer": trainer.state_dict(),
                     "schedule": schedule.state_dict(), "log": log, **extra_state()})
    return log


def _retrain(trainer, epochs: int, tag: str) -> str:
    """Retrain after a pruning step; a divergence is that step's failure (it is rolled back like
    a missed threshold), so it returns the reason instead of stopping the stage ("" if none)."""
    try:
        for _ in range(epochs):
            trainer.epoch(tag=tag)
    except Diverged as exc:
        return exc.problem
    return ""


def check_some_accepted(stage: str, task_name: str, log: list[dict], threshold: Threshold, split: str,
                        policy: str) -> dict:
    """Refuse a pruning stage whose every iteration was rolled back (its output would be its input
    under the pruned name), unless ``policy`` is "pass_through"; returns the metrics' record."""
    if not log or any(r["accepted"] for r in log):
        return {"passed_through": False}
    scores = ", ".join("diverged" if r.get("diverged") else f"{r[split]:.4g}" for r in log)
    if policy == "pass_through":
        return {"passed_through": True}
    raise UserError(f"{stage} {task_name}: all {len(log)} iterations missed the threshold {split} "
                    f"{threshold.bound:.4g} ({scores}), so the output would be the unpruned input",
                    f"loosen threshold.{task_name} (slack or value), retrain more "
                    f"({stage}.{task_name}.retrain_epochs), or set {stage}.{task_name}.if_none_accepted: "
                    f"pass_through to pass the input on knowingly")
