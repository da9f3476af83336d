"""The training loop shared by the baseline and every step: SGD, LR schedule, history."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from symbiotic.tasks.base import TrainConfig
from symbiotic.training.schedule import PlateauLR
from symbiotic.training.snapshot import restore, snapshot


def _optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (plain, momentum or Nesterov: the papers' recipes) or Adam (quicker off CTC's
    all-blank plateau when the budget is a few epochs)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains ``model`` on ``task`` epoch by epoch; its whole state fits in a checkpoint."""

    def __init__(self, task, model: nn.Module, cfg: TrainConfig, lr: float | None = None):
        self.task, self.model, self.cfg = task, model, cfg
        lr = cfg.lr if lr is None else lr
        self.optimizer = _optimizer(model, cfg, lr)
        self.plateau = PlateauLR(lr, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr)
        self.epochs_done = 0
        self.history: list[dict] = []

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def epoch(self, tag: str = "") -> dict:
        """Train one epoch, score the task's monitor split, then update the LR: divided when
        the score stops improving (``lr_factor``) and multiplied by ``lr_decay`` every epoch."""
        start = time.perf_counter()
        loss = self.task.train_epoch(self.model, self.optimizer, self.epochs_done)
        valid = self.task.score(self.model, self.task.monitor_split)
        row = {"tag": tag, "epoch": self.epochs_done, "lr": self.lr, "train_loss": loss,
               self.task.metric: valid, "seconds": round(time.perf_counter() - start, 1)}
        self.plateau.step(valid if math.isfinite(valid) else float("inf"))
        if self.cfg.lr_decay != 1.0:
            self.plateau.lr = max(self.plateau.lr * self.cfg.lr_decay, self.cfg.min_lr)
        self.plateau.apply(self.optimizer)
        self.epochs_done += 1
        self.history.append(row)
        return row

    def snapshot(self) -> dict:
        """What a failed pruning iteration rolls back: weights, masks, optimizer state, and
        the rate with its plateau count (a rejected retraining must not lower the rate for
        the next try, nor count towards its patience)."""
        return {**snapshot(self.model, self.optimizer), "plateau": self.plateau.state_dict()}

    def restore(self, snap: dict) -> None:
        restore(self.model, snap, self.optimizer)
        self.plateau.load_state_dict(snap["plateau"])
        self.plateau.apply(self.optimizer)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "plateau": self.plateau.state_dict(),
                "epochs_done": self.epochs_done, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
        self.epochs_done = state["epochs_done"]
        self.history = list(state["history"])
