"""Tasks: what makes the training steps task-agnostic.

A task builds its models, trains one epoch, scores a model (lower is better:
perplexity, WER), yields losses for gradient statistics, and exports and times
its models. The four steps of the flow (flow/) are written once against this
interface (``base.Task``). Each task module also names its params classes:
``TrainConfig`` (train.<task>), ``ModelSpec`` (model.<task>), ``BaselineSpec``
(baseline.<task>) and ``profile_base`` (the widths the profile centres on).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from symbiotic.errors import UserError

TASKS = {"ptb": ("symbiotic.tasks.ptb", "PTBTask"), "an4": ("symbiotic.tasks.an4", "AN4Task")}


def task_module(name: str) -> ModuleType:
    """The module of task ``name`` (imported on demand: PTB runs never load torchaudio)."""
    if name not in TASKS:
        raise UserError(f"unknown task '{name}'", f"use one of: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name][0])


def task_class(name: str) -> type:
    return getattr(task_module(name), TASKS[name][1])
