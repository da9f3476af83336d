"""The stock-LSTM baseline, trained with the same recipe; its score is the default threshold."""

from __future__ import annotations

from dataclasses import asdict

from symbiotic.flow.common import seed_everything
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume


def train_baseline(task, spec, resume: Resume):
    """Train the task's baseline described by ``spec`` (its BaselineSpec, epochs included) for
    ``spec.epochs``; returns (model, trainer)."""
    seed_everything(task.cfg.seed)
    shape = {k: v for k, v in asdict(spec).items() if k != "epochs"}
    model = task.new_baseline(shape)
    trainer = Trainer(task, model, task.cfg)
    saved = resume.load()
    if saved:
        model.load_state_dict(saved["model"])
        trainer.load_state_dict(saved["trainer"])
    while trainer.epochs_done < spec.epochs:
        trainer.epoch(tag="baseline")
        resume.save({"model": model.state_dict(), "trainer": trainer.state_dict()})
    return model, trainer
