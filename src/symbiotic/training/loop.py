"""The training loop shared by the baseline and every step: the step, LR schedule, history."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from symbiotic.progress import bar
from symbiotic.sparsity.masks import apply_masks
from symbiotic.training.config import TrainConfig
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
    """Trains ``model`` on ``task`` epoch by epoch; its whole state fits in a checkpoint.

    The task gives each batch's loss (``train_losses``); the optimizer step is taken here,
    once for every task.
    """

    def __init__(self, task, model: nn.Module, cfg: TrainConfig, lr: float | None = None):
        self.task, self.model, self.cfg = task, model, cfg
        lr = cfg.lr if lr is None else lr
        self.optimizer = _optimizer(model, cfg, lr)
        self.plateau = PlateauLR(lr, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr,
                                 higher_is_worse=task.metric.lower_is_better)
        self.epochs_done = 0
        self.history: list[dict] = []

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def epoch(self, tag: str = "") -> dict:
        """Train one epoch, score the task's monitor split, then update the LR: divided when
        the score stops improving (``lr_factor``) and multiplied by ``lr_decay`` every epoch."""
        start = time.perf_counter()
        loss = self.train_epoch()
        valid = self.task.score(self.model, self.task.monitor_split)
        metric = self.task.metric
        row = {"tag": tag, "epoch": self.epochs_done, "lr": self.lr, "train_loss": loss,
               metric.name: valid, "seconds": round(time.perf_counter() - start, 1)}
        self.plateau.step(valid if math.isfinite(valid) else metric.worst)
        if self.cfg.lr_decay != 1.0:
            self.plateau.lr = max(self.plateau.lr * self.cfg.lr_decay, self.cfg.min_lr)
        self.plateau.apply(self.optimizer)
        self.epochs_done += 1
        self.history.append(row)
        return row

    def train_epoch(self) -> float:
        """One pass over the task's training batches; the epoch's mean loss, each batch
        weighted as the task says (NaN at the first non-finite loss: the epoch stops there)."""
        epoch = self.epochs_done
        self.model.train()
        losses = self.task.train_losses(self.model, epoch)
        total, count = 0.0, 0
        for loss, weight in bar(losses, total=self.task.train_steps(), desc=f"epoch {epoch}"):
            self.step(loss)
            value = loss.item()
            if not math.isfinite(value):
                return math.nan
            total, count = total + value * weight, count + weight
        return total / max(count, 1)

    def step(self, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``: gradients clipped to ``cfg.clip`` (0: not clipped),
        masks re-applied after (momentum and weight decay would move masked weights)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        apply_masks(self.model)

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
