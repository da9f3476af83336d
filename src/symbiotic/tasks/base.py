"""The interface every task implements, and the score it is judged by."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Iterator, Protocol

import torch
from torch import nn

from symbiotic.training.config import TrainConfig


@dataclass(frozen=True)
class Metric:
    """A task's thresholded score: its name in score keys (``test_<name>``), its display unit
    and its direction, so that generic code never asks which task it runs."""

    name: str
    unit: str = ""  # shown beside the name ("%"); empty: a plain number
    lower_is_better: bool = True

    def __str__(self) -> str:
        return self.name  # f"test_{metric}" names the score, as the metrics files always have

    @property
    def label(self) -> str:
        """e.g. 'wer (%)' or 'perplexity': for axes and tables."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def worst(self) -> float:
        """Stands in for a diverged (non-finite) score: no finite score is worse."""
        return math.inf if self.lower_is_better else -math.inf

    def no_worse(self, value: float, reference: float) -> bool:
        return value <= reference if self.lower_is_better else value >= reference


@dataclass(frozen=True)
class LatencyTarget:
    """What the profile times for a task, built from params alone (no data): the exported model
    the flow ships, at any widths, on random inputs of the task's inference shape.

    ``base``: the starting widths (input, hidden, gate_hidden) the profile grids centre on;
    ``model(dims)``: a trainable model with EVERY layer at ``dims`` (so the profile times all
    layers, as they ship); ``inputs(batch, steps, gen)``: inputs that give ``steps`` recurrent
    steps; ``export`` and ``call``: the task's own export and latency call (tasks.base.Task).
    """

    base: dict[str, int]
    model: Callable[[dict[str, int]], nn.Module]
    inputs: Callable[[int, int, torch.Generator], tuple]
    export: Callable[..., nn.Module]
    call: Callable[[nn.Module, tuple, str], Callable[[], object]]


class Exports:
    """A task's export methods, done by its model's module in ``symbiotic.runtime``
    (``runtime``): export a trained model, and turn an export into plain tensors and back."""

    runtime: ModuleType

    def export(self, model: nn.Module, formats: dict[str, str], thinned: bool = True,
               decoder: str = "dense") -> nn.Module:
        return self.runtime.export(model, formats, thinned, decoder)

    def inference_state(self, exported: nn.Module) -> dict:
        return self.runtime.to_state(exported)

    def load_inference(self, state: dict) -> nn.Module:
        return self.runtime.from_state(state)


class Task(Protocol):
    """What the steps need of a task; ``tasks/ptb.py`` and ``tasks/an4.py`` implement it.

    How its data is prepared is in ``tasks/<name>_prepare.py`` (``tasks.task_preparation``),
    apart from the task so that the prepare stage imports no model code.
    """

    name: str
    metric: Metric
    splits: tuple[str, ...]  # the splits score() accepts
    monitor_split: str  # the split scored after every epoch ("valid"; "test" where there is none)
    dims: tuple[str, ...]  # the model-config keys that are its dimensions (metrics' dims.*)
    profile_dims: dict[str, str]  # profiled dimension -> the unit key prefix it sizes
    cfg: TrainConfig

    def new_model(self, spec: dict) -> nn.Module: ...

    def new_baseline(self, spec: dict) -> nn.Module: ...

    def model_from_checkpoint(self, ckpt: dict, source: str = "checkpoint") -> nn.Module: ...

    def kind(self, model: nn.Module) -> str: ...

    def train_steps(self) -> int: ...  # batches in one training epoch (the progress bar's total)

    # Each training batch's loss, in order, and its weight in the epoch's mean loss; the Trainer
    # steps on each before the next is computed. Of several processes (training.distributed),
    # each gives its share of every batch (distributed.current().rows) with the share's weight;
    # a task that does not still trains correctly, with every process on the whole batch.
    def train_losses(self, model: nn.Module, epoch: int) -> Iterator[tuple[torch.Tensor, int]]: ...

    def score(self, model: nn.Module, split: str) -> float: ...

    def scores(self, model: nn.Module) -> dict[str, float]: ...

    # Losses for gradient-based growth, each with its weight (as train_losses gives them).
    def gradient_losses(self, model: nn.Module, batches: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, int]]: ...

    def export(self, model: nn.Module, formats: dict[str, str], thinned: bool = True,
               decoder: str = "dense") -> nn.Module: ...

    def inference_state(self, exported: nn.Module) -> dict: ...

    def load_inference(self, state: dict) -> nn.Module: ...

    def input_length(self, steps: int) -> int: ...

    def latency_inputs(self, batch: int, seq_len: int) -> tuple: ...

    def latency_call(self, model: nn.Module, inputs: tuple, part: str) -> Callable[[], object]: ...
