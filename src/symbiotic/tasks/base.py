"""The interface every task implements, and the training recipe shared by all steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch
from torch import nn

from symbiotic.config import ranged


@dataclass(frozen=True)
class TrainConfig:
    """One recipe for the baseline and every step, so comparisons are fair."""

    lr: float = ranged(30.0, lo=1e-6, hi=1e4)
    lr_factor: float = ranged(10.0, lo=1.0, hi=1000.0)
    min_lr: float = ranged(0.0, lo=0.0)
    momentum: float = ranged(0.0, lo=0.0, hi=0.999)
    nesterov: bool = False
    weight_decay: float = ranged(1.2e-6, lo=0.0, hi=1.0)
    clip: float = ranged(0.25, lo=0.0)
    batch: int = ranged(32, lo=1)
    bptt: int = ranged(70, lo=1)
    eval_batch: int = ranged(10, lo=1)
    train_tokens: int | None = ranged(None, lo=100)  # null: the whole training text
    grad_batches: int = ranged(20, lo=1)  # batches averaged for gradient-based growth
    threads: int | None = ranged(None, lo=1)
    seed: int = ranged(1, lo=0)


class Task(Protocol):
    name: str
    metric: str  # "perplexity", "wer": lower is better

    def new_model(self, spec: dict) -> nn.Module: ...

    def new_baseline(self, spec: dict) -> nn.Module: ...

    def model_from_checkpoint(self, ckpt: dict) -> nn.Module: ...

    def train_epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> float: ...

    def score(self, model: nn.Module, split: str) -> float: ...

    def gradient_losses(self, model: nn.Module, batches: int) -> Iterator[torch.Tensor]: ...

    def latency_call(self, model: nn.Module, batch: int, seq_len: int, part: str): ...
