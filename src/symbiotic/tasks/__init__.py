"""Tasks: what makes the training steps task-agnostic.

A task builds its models, yields its training losses, scores a model by its
metric (``base.Metric``: perplexity, WER in %), names its dimensions, yields
losses for gradient statistics, and exports and times its models. The four
steps of the flow (flow/) are written once against this interface
(``base.Task``). Each task module also names its params classes:
``TrainConfig`` (train.<task>), ``ModelSpec`` (model.<task>), ``BaselineSpec``
(baseline.<task>) and ``latency_target`` (what the profile times: ``base.LatencyTarget``).
How a task's data is prepared lives in a module of its own
(``tasks/<task>_prepare.py``), so that the prepare stage imports no model code.

This is the one registry of tasks: every module is imported by name, on
demand, so that a stage imports only its own task's code (PTB runs never load
torchaudio, and dvc.yaml reruns a stage only for its own task's edits).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from symbiotic.errors import UserError

# name -> (task module, its Task class, its preparation module)
# (ptb_char: the example of a user's own task, README "Your own task").
TASKS = {"ptb": ("symbiotic.tasks.ptb", "PTBTask", "symbiotic.tasks.ptb_prepare"),
         "an4": ("symbiotic.tasks.an4", "AN4Task", "symbiotic.tasks.an4_prepare"),
         "ptb_char": ("symbiotic.tasks.ptb_char", "CharPTBTask", "symbiotic.tasks.ptb_char_prepare")}


def _entry(name: str) -> tuple[str, str, str]:
    if name not in TASKS:
        raise UserError(f"unknown task '{name}'", f"use one of: {', '.join(TASKS)}")
    return TASKS[name]


def task_module(name: str) -> ModuleType:
    """The module of task ``name``: its Task class and params classes."""
    return importlib.import_module(_entry(name)[0])


def task_class(name: str) -> type:
    return getattr(task_module(name), _entry(name)[1])


def task_preparation(name: str) -> ModuleType:
    """The module that prepares task ``name``'s data: ``config``, ``source_files``, ``prepare``."""
    return importlib.import_module(_entry(name)[2])
