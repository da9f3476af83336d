"""The training loop shared by the baseline and every step: the step, LR schedule, history."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from symbiotic.errors import UserError
from symbiotic.progress import bar
from symbiotic.sparsity.masks import apply_masks, recurrent_density, recurrent_masks
from symbiotic.training import curves, distributed
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


class Diverged(UserError):
    """Training went numerically wrong: a non-finite loss or score, or a loss far above where the
    epoch started. Raised before anything is written; the last completed epoch stays resumable."""

    def __init__(self, task, epoch: int, batch: int, of: int, why: str, lr: float):
        self.epoch, self.batch = epoch, batch
        where = f"train.{task.name}"
        super().__init__(f"{task.name} training diverged in epoch {epoch}, batch {batch} of {of}: {why}",
                         f"lower {where}.lr (now {lr:g}) or {where}.clip, or raise {where}.diverge_factor "
                         f"if the loss only spikes; the last completed epoch is kept for a rerun")


class LossWatch:
    """Divergence as the Trainer defines it: a non-finite batch loss, or the mean of the last
    ``window`` batch losses above ``factor`` times the stage's starting loss (0: off).

    The starting loss is the lower of the first batch's and the first window's mean: whole
    windows, because batch losses of one sane epoch differ by more than the factor (AN4's CTC
    loss sums over frames, and its first epoch runs shortest utterances first), and the first
    batch too, because a rate that blows up does so within the first window.
    """

    def __init__(self, factor: float, window: int, start: float | None = None):
        self.factor, self.window, self.start = factor, window, start
        self.first: float | None = None
        self.recent: list[float] = []

    def problem(self, value: float) -> str | None:
        """Why ``value`` (the next batch loss) means divergence, or None."""
        if not math.isfinite(value):
            return f"the loss is {value}"
        self.first = value if self.first is None else self.first
        self.recent = (self.recent + [value])[-self.window:]
        if len(self.recent) < self.window:
            return None
        mean = sum(self.recent) / self.window
        if self.start is None:
            self.start = min(self.first, mean)
        if self.factor > 0 and self.start > 0 and mean > self.factor * self.start:
            return (f"the mean loss of the last {self.window} batches is {mean:.4g}, "
                    f"{mean / self.start:.1f}x the stage's starting loss ({self.start:.4g})")
        return None


class Trainer:
    """Trains ``model`` on ``task`` epoch by epoch; its whole state fits in a checkpoint.

    The task gives each batch's loss (``train_losses``); the optimizer step is taken here,
    once for every task. With several processes (training.distributed) the task gives this
    rank's share of each batch and the model trains inside DistributedDataParallel.
    """

    def __init__(self, task, model: nn.Module, cfg: TrainConfig, lr: float | None = None):
        self.task, self.model, self.cfg = task, model, cfg
        self.world = distributed.current()
        self.net = self.world.wrap(model)  # what the task's losses run through
        if task.train_steps() < 1:  # e.g. a batch wider than the training text: nothing would train
            raise UserError(f"one {task.name} training epoch has no batch (train.{task.name}.batch is "
                            f"{cfg.batch})", f"lower train.{task.name}.batch or give more training data")
        lr = cfg.lr if lr is None else lr
        self.optimizer = _optimizer(model, cfg, lr)
        self.plateau = PlateauLR(lr, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr,
                                 higher_is_worse=task.metric.lower_is_better)
        self.epochs_done = 0
        self.history: list[dict] = []
        self.start_loss: float | None = None  # LossWatch's reference, kept across epochs and resumes

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
        if not math.isfinite(valid):
            n = self.task.train_steps()
            raise Diverged(self.task, self.epochs_done, n, n, f"the {self.task.monitor_split} {metric.name} "
                           f"is {valid}", self.lr)
        row = {"tag": tag, "epoch": self.epochs_done, "lr": self.lr, "train_loss": loss,
               metric.name: valid, **self.shape(), "seconds": round(time.perf_counter() - start, 1)}
        self.plateau.step(valid if math.isfinite(valid) else metric.worst)
        if self.cfg.lr_decay != 1.0:
            self.plateau.lr = max(self.plateau.lr * self.cfg.lr_decay, self.cfg.min_lr)
        self.plateau.apply(self.optimizer)
        self.epochs_done += 1
        self.history.append(row)
        curves.log(row)
        return row

    def shape(self) -> dict:
        """What the curves show beside the score: the model's widths and, for the H-LSTM, the
        share of recurrent weights kept (the pruning steps change both between epochs)."""
        cfg = self.model.config.to_dict() if hasattr(self.model, "config") else {}
        out = {f"width_{k}": _width(cfg[k]) for k in getattr(self.task, "dims", ()) if k in cfg}
        if recurrent_masks(self.model):
            out["density"] = recurrent_density(self.model)
        return out

    def train_epoch(self) -> float:
        """One pass over the task's training batches; the epoch's mean loss, each batch
        weighted as the task says. Divergence (:class:`LossWatch`) stops it with :class:`Diverged`
        before the step is taken, so the weights are the last finite ones."""
        epoch, steps = self.epochs_done, self.task.train_steps()
        self.model.train()
        losses = self.task.train_losses(self.net, epoch)
        watch = LossWatch(self.cfg.diverge_factor, self.cfg.diverge_window, self.start_loss)
        total, count = 0.0, 0
        for batch, (loss, weight) in enumerate(bar(losses, total=steps, desc=f"epoch {epoch}")):
            # The whole batch's loss and weight (this rank's share's, in one process): every
            # rank watches the same numbers, so all stop together or none does.
            value, weight_all = self.world.global_weight(loss.item(), weight)
            problem = watch.problem(value)
            if problem:
                raise Diverged(self.task, epoch, batch, steps, problem, self.lr)
            self.start_loss = watch.start
            self.step(loss * self.world.share(weight, weight_all) if self.world.active else loss)
            total, count = total + value * weight_all, count + weight_all
        self.world.check_identical(self.model)
        if count == 0:
            raise UserError(f"{self.task.name} epoch {epoch} trained no batch",
                            f"lower train.{self.task.name}.batch or give more training data")
        return total / count

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
                "epochs_done": self.epochs_done, "history": self.history, "start_loss": self.start_loss}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
        self.epochs_done = state["epochs_done"]
        self.history = list(state["history"])
        self.start_loss = state.get("start_loss")
        curves.replay(self.history)  # DVC cleared the curves of the interrupted run


def _width(value):
    """One layer's width as a number (a curve); several layers' as '16x16' (as metrics write them)."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else "x".join(str(v) for v in value)
    return value
