"""The stacked-LSTM baseline, trained with the same recipe; its score is the default threshold."""

from __future__ import annotations

from dataclasses import dataclass

from symbiotic.config import ranged
from symbiotic.flow.common import seed_everything
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume


@dataclass(frozen=True)
class BaselineConfig:
    embed: int = ranged(lo=1)
    hidden: int = ranged(lo=1)
    layers: int = ranged(2, lo=1, hi=8)
    dropout: float = ranged(0.65, lo=0.0, hi=0.95)
    dropout_words: float = ranged(0.1, lo=0.0, hi=0.95)
    epochs: int = ranged(6, lo=1, hi=10000)


def train_baseline(task, cfg: BaselineConfig, resume: Resume):
    """Train the baseline for ``cfg.epochs``; returns (model, trainer)."""
    seed_everything(task.cfg.seed)
    spec = {k: getattr(cfg, k) for k in ("embed", "hidden", "layers", "dropout", "dropout_words")}
    model = task.new_baseline(spec)
    trainer = Trainer(task, model, task.cfg)
    saved = resume.load()
    if saved:
        model.load_state_dict(saved["model"])
        trainer.load_state_dict(saved["trainer"])
    while trainer.epochs_done < cfg.epochs:
        trainer.epoch(tag="baseline")
        resume.save({"model": model.state_dict(), "trainer": trainer.state_dict()})
    return model, trainer
