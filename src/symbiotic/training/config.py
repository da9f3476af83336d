"""The training recipe the Trainer reads: the keys of ``train.<task>`` every task shares."""

from __future__ import annotations

from dataclasses import dataclass

from symbiotic.config import ranged


@dataclass(frozen=True)
class TrainConfig:
    """One recipe for the baseline and every step, so comparisons are fair.

    These keys are every task's; a task adds its own in a subclass (PTB its
    BPTT window, AN4 nothing).
    """

    optimizer: str = ranged("sgd", choices=("sgd", "adam"))  # sgd: momentum/nesterov below apply
    lr: float = ranged(30.0, lo=1e-6, hi=1e4)
    lr_factor: float = ranged(10.0, lo=1.0, hi=1000.0)  # divide on a validation plateau (1: never)
    lr_patience: int = ranged(0, lo=0, hi=100000)  # non-improving epochs tolerated before dividing (paper: 50)
    lr_decay: float = ranged(1.0, lo=0.01, hi=1.0)  # multiply after every epoch (1: never)
    min_lr: float = ranged(0.0, lo=0.0)
    momentum: float = ranged(0.0, lo=0.0, hi=0.999)
    nesterov: bool = False
    weight_decay: float = ranged(1.2e-6, lo=0.0, hi=1.0)
    clip: float = ranged(0.25, lo=0.0)
    batch: int = ranged(32, lo=1)
    eval_batch: int = ranged(10, lo=1)
    grad_batches: int = ranged(20, lo=1)  # batches averaged for gradient-based growth
    threads: int | None = ranged(None, lo=1)
    seed: int = ranged(1, lo=0)
    # Training processes (training.distributed): >1 starts the stage under torchrun with
    # DistributedDataParallel, each process on its share of every `batch` (the global batch).
    processes: int = ranged(1, lo=1, hi=1024)
    # Training stops as diverged when the mean loss of the last `diverge_window` batches exceeds
    # this many times the stage's starting loss (loop.LossWatch), or any loss is non-finite: a
    # capped perplexity and finite weights would otherwise hide it. 0: only non-finite losses.
    diverge_factor: float = ranged(10.0, lo=0.0, hi=1e6)
    diverge_window: int = ranged(50, lo=1, hi=100000)
