"""Step (a): gradient-based weight growth from a sparse random seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symbiotic.config import ranged
from symbiotic.flow.common import accumulated_gradients, seed_everything
from symbiotic.sparsity.growth import POPULATIONS, grow_masks
from symbiotic.sparsity.masks import apply_masks, open_masks, random_masks, recurrent_density, recurrent_masks
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume


@dataclass(frozen=True)
class GrowConfig:
    seed_density: float = ranged(0.5, lo=0.01, hi=1.0)  # fraction of connections active at the start
    growth_ratio: float = ranged(0.1, lo=0.0, hi=1.0)  # g_w: share of dormant connections woken per point
    growth_epochs: int = ranged(8, lo=0)  # growth points: one before each of the first epochs
    epochs: int = ranged(6, lo=1, hi=10000)  # total training epochs of the step
    scope: str = ranged("per_matrix", choices=("per_matrix", "global"))
    # the growth percentile: over the whole matrix's gradient (the paper) or its dormant entries only
    percentile_over: str = ranged("matrix", choices=POPULATIONS)


def gradient_magnitudes(task, model, batches: int, seed: int) -> dict[str, torch.Tensor]:
    """|mean gradient| of every recurrent matrix over ``batches`` training windows.

    Masks are opened so that dormant (zero) weights get their true gradient;
    the outputs are unchanged because dormant weights are held at zero.
    """
    with open_masks(model):
        return accumulated_gradients(task, model, list(recurrent_masks(model)), batches, seed).mean_magnitude()


def growth_point(task, model, ratio: float, batches: int, seed: int, scope: str,
                 population: str = "matrix") -> int:
    """Wake the dormant connections with the largest gradient; returns how many woke."""
    pairs = recurrent_masks(model)
    before = {n: m.clone() for n, (_, m) in pairs.items()}
    grads = gradient_magnitudes(task, model, batches, seed)
    after = grow_masks(grads, before, ratio, scope=scope, population=population)
    with torch.no_grad():
        for n, (_, mask) in pairs.items():
            mask.copy_(after[n])
    apply_masks(model)  # woken weights start at zero and learn from the next step on
    return int(sum(float(after[n].sum() - before[n].sum()) for n in pairs))


def grow(task, spec: dict, cfg: GrowConfig, resume: Resume):
    """Train an H-LSTM from a sparse seed with growth points; returns (model, trainer, log)."""
    gen = seed_everything(task.cfg.seed)
    model = task.new_model(spec)
    random_masks(model.layers, cfg.seed_density, gen)  # the decoder stays dense
    trainer = Trainer(task, model, task.cfg)
    log = [{"epoch": 0, "event": "seed", "density": recurrent_density(model), "woken": 0}]
    saved = resume.load()
    if saved:
        model.load_state_dict(saved["model"])
        trainer.load_state_dict(saved["trainer"])
        log = list(saved["log"])
    while trainer.epochs_done < cfg.epochs:
        epoch = trainer.epochs_done
        if epoch < cfg.growth_epochs and cfg.growth_ratio > 0:
            woken = growth_point(task, model, cfg.growth_ratio, task.cfg.grad_batches, epoch, cfg.scope,
                                 cfg.percentile_over)
            log.append({"epoch": epoch, "event": "growth", "density": recurrent_density(model),
                        "woken": woken})
        trainer.epoch(tag="grow")
        resume.save({"model": model.state_dict(), "trainer": trainer.state_dict(), "log": log})
    return model, trainer, log
