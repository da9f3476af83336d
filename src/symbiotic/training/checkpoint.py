"""Checkpoints: plain dicts of tensors and config, loadable with ``weights_only=True``.

Modules and optimizers are never pickled whole: a checkpoint is
``{"kind", "config", "state_dict", "meta"}`` and the model is rebuilt from its
config, so a file written by an older version still loads, and a file of the
wrong shape fails with a message that names the tensor.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from symbiotic import io
from symbiotic.errors import UserError


def save(path: Path, model: nn.Module, kind: str, meta: dict | None = None) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    io.save_tensors({"kind": kind, "config": model.config.to_dict(), "state_dict": state,
                     "meta": meta or {}}, path)


def load(path: Path) -> dict:
    if not Path(path).is_file():
        raise UserError(f"checkpoint {path} not found", "run the stage that writes it (dvc repro)")
    try:
        ckpt = io.load_tensors(path)
    except Exception as exc:  # torch raises many types for a damaged file
        raise UserError(f"checkpoint {path} is unreadable ({exc.__class__.__name__})",
                        "delete it and rerun the stage that writes it") from None
    if not isinstance(ckpt, dict) or not {"kind", "config", "state_dict"} <= set(ckpt):
        raise UserError(f"{path} is not a symbiotic checkpoint", "point the stage at a file it wrote")
    return ckpt


def load_state(model: nn.Module, state: dict, source: str) -> nn.Module:
    """Copy ``state`` into ``model``; a missing or mis-shaped tensor is a UserError naming it."""
    own = model.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise UserError(f"{source} lacks tensor '{key}'", "it was written for another model; rerun its stage")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{source}: tensor '{key}' has shape {tuple(state[key].shape)}, "
                            f"the model expects {tuple(tensor.shape)}",
                            "the checkpoint belongs to another configuration; rerun its stage")
    extra = sorted(set(state) - set(own))
    if extra:
        raise UserError(f"{source} has unexpected tensor '{extra[0]}'", "rerun the stage that wrote it")
    model.load_state_dict(state)
    return model
