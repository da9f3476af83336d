"""Rollback: remember a model (and optimizer) exactly, and put it back.

Algorithm 1 tries a pruning step, retrains, and rolls back when the accuracy
threshold fails, so a snapshot must restore the model bit for bit: weights,
mask buffers and optimizer state (momentum, Adam moments, step counts). Only
what ``state_dict`` holds is captured: non-persistent buffers, Python
attributes and RNG state are not.

Snapshots stay on the tensors' own device (a GPU model is copied on the GPU,
which is fast and needs no host memory) and are never aliased by the model or
optimizer after :func:`restore`, so one snapshot can be restored many times.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from symbiotic.errors import UserError

__all__ = ["snapshot", "restore"]


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """An independent copy of ``model``'s state_dict and, if given, ``optimizer``'s."""
    snap: dict[str, Any] = {
        "model": {key: value.detach().clone() for key, value in model.state_dict().items()},
        "optimizer": None,
    }
    if optimizer is not None:
        snap["optimizer"] = copy.deepcopy(optimizer.state_dict())
    return snap


def _check_same_layout(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Raise ``UserError`` naming the first key whose presence or shape differs."""
    current = model.state_dict()
    for key, value in current.items():
        if key not in saved:
            raise UserError(
                f"snapshot has no entry '{key}' that the model has",
                "restore a snapshot taken from a model of the same architecture",
            )
        if tuple(saved[key].shape) != tuple(value.shape):
            raise UserError(
                f"snapshot entry '{key}' has shape {tuple(saved[key].shape)} but the model has {tuple(value.shape)}",
                "restore a snapshot taken before the model's shapes changed, or rebuild the model at the snapshot's sizes",
            )
    for key in saved:
        if key not in current:
            raise UserError(
                f"snapshot entry '{key}' does not exist in the model",
                "restore a snapshot taken from a model of the same architecture",
            )


def restore(model: nn.Module, snap: dict[str, Any], optimizer: torch.optim.Optimizer | None = None) -> None:
    """Put ``model`` (and ``optimizer``) back exactly as they were at ``snap``.

    Shapes are checked first, so a mismatch leaves the model untouched.
    Values are copied into the model's existing tensors (parameters keep
    their identity, so an optimizer built on them stays valid); the optimizer
    state is deep-copied in, because ``Optimizer.load_state_dict`` may keep
    the given tensors and later update them in place.
    """
    _check_same_layout(model, snap["model"])
    if optimizer is not None and snap.get("optimizer") is None:
        raise ValueError("snapshot holds no optimizer state; pass the optimizer to snapshot() too")
    model.load_state_dict(snap["model"], strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
