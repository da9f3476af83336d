"""Checkpoints: plain dicts of tensors and config, loadable with ``weights_only=True``.

Modules and optimizers are never pickled whole: a checkpoint is
``{"kind", "config", "state_dict", "meta"}`` and the model is rebuilt from its
config, so a file written by an older version still loads, and a file of the
wrong shape fails with a message that names the tensor.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from symbiotic import io
from symbiotic.errors import UserError


def save(path: Path, model: nn.Module, kind: str, meta: dict | None = None) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    io.save_tensors({"kind": kind, "config": model.config.to_dict(), "state_dict": state,
                     "meta": meta or {}}, path)


def load(path: Path) -> dict:
    ckpt = io.read_tensors(path, "checkpoint", "rerun the stage that writes it (dvc repro)")
    if not isinstance(ckpt, dict) or not {"kind", "config", "state_dict"} <= set(ckpt):
        raise UserError(f"{path} is not a symbiotic checkpoint", "point the stage at a file it wrote")
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["state_dict"], dict):
        raise UserError(f"{path} is not a symbiotic checkpoint (config or state_dict is no mapping)",
                        "point the stage at a file it wrote")
    return ckpt


def build_config(cls, values: dict, source: str):
    """A model config dataclass from a checkpoint's ``config``; a missing or unknown field (a file
    of another version or model) is a UserError naming it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = {n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing, unknown = sorted(required - set(values)), sorted(set(values) - set(fields))
    if missing or unknown:
        problem = f"lacks config field '{missing[0]}'" if missing else f"has unknown config field '{unknown[0]}'"
        raise UserError(f"{source} {problem}", "it was written by another version or model; rerun its stage")
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source} has an invalid config ({exc})", "rerun the stage that wrote it") from None


def load_state(model: nn.Module, state: dict, source: str) -> nn.Module:
    """Copy ``state`` into ``model``; a missing or mis-shaped tensor is a UserError naming it."""
    own = model.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise UserError(f"{source} lacks tensor '{key}'", "it was written for another model; rerun its stage")
        if not isinstance(state[key], torch.Tensor):
            raise UserError(f"{source}: '{key}' is a {type(state[key]).__name__}, not a tensor",
                            "the file is damaged or foreign; rerun the stage that wrote it")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{source}: tensor '{key}' has shape {tuple(state[key].shape)}, "
                            f"the model expects {tuple(tensor.shape)}",
                            "the checkpoint belongs to another configuration; rerun its stage")
    extra = sorted(set(state) - set(own))
    if extra:
        raise UserError(f"{source} has unexpected tensor '{extra[0]}'", "rerun the stage that wrote it")
    for key, tensor in state.items():  # NaN weights would only surface as NaN in the metrics
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{source}: tensor '{key}' holds NaN or infinite values",
                            "its stage diverged or the file is damaged; rerun the stage that wrote it")
    model.load_state_dict(state)
    return model
