"""Binary masks kept as buffers beside the weights they gate.

A module that owns a parameter ``X`` and a float 0/1 buffer ``mask_X`` has a
masked weight. Keeping the mask as a buffer (not folding it into the weight)
lets a dormant connection be woken later without losing the information of
which connections exist, and it travels with ``state_dict`` into checkpoints.

Invariant: a weight entry whose mask is 0 is exactly 0. :func:`effective` is
the one place masks enter computation; :func:`apply_masks` restores the
invariant after every optimizer step (momentum and weight decay move an entry
even when its gradient is zero).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from symbiotic.errors import UserError

__all__ = [
    "MASK_PREFIX",
    "masked_weights",
    "recurrent_masks",
    "output_masks",
    "recurrent_density",
    "effective",
    "apply_masks",
    "open_masks",
    "random_masks",
    "sparsity_stats",
    "get_masks",
    "set_masks",
]

MASK_PREFIX = "mask_"


def masked_weights(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, Tensor]]:
    """Yield ``(qualified_name, weight, mask)`` for every masked weight, in module order.

    ``qualified_name`` is the weight's name in ``model.named_parameters()``, so
    it can key gradients and optimizer state alike.
    """
    for mod_name, module in model.named_modules():
        for name, weight in module.named_parameters(recurse=False):
            mask = module._buffers.get(MASK_PREFIX + name)
            if mask is not None:
                yield (f"{mod_name}.{name}" if mod_name else name), weight, mask


def recurrent_masks(model: nn.Module) -> dict[str, tuple[nn.Parameter, Tensor]]:
    """The masked matrices of the recurrent layers (not the decoder): what the steps sparsify."""
    return {name: (w, m) for name, w, m in masked_weights(model) if name.startswith("layers.")}


def output_masks(model: nn.Module) -> dict[str, tuple[nn.Parameter, Tensor]]:
    """The masked matrices outside the recurrent layers: the decoder (step (d) may prune it)."""
    return {name: (w, m) for name, w, m in masked_weights(model) if not name.startswith("layers.")}


def recurrent_density(model: nn.Module) -> float:
    """Share of mask entries that are 1 over the recurrent matrices."""
    pairs = recurrent_masks(model).values()
    return sum(float(m.sum()) for _, m in pairs) / sum(m.numel() for _, m in pairs)


@torch.no_grad()
def output_sparsity(model: nn.Module) -> float:
    """1 - mask mean of the masked matrices outside the recurrent layers (the decoder); 0 if none."""
    masks = [m for _, m in output_masks(model).values()]
    total = sum(m.numel() for m in masks)
    return 1.0 - sum(int(m.count_nonzero()) for m in masks) / total if total else 0.0


def effective(module: nn.Module, name: str) -> Tensor:
    """``weight * mask`` for parameter ``name`` of ``module``.

    Multiplying (rather than trusting the weight to be zero) makes the gradient
    at masked positions exactly zero, so the optimizer never sees it.
    """
    return getattr(module, name) * getattr(module, MASK_PREFIX + name)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every masked-out weight in place; call after EVERY optimizer step."""
    for _, weight, mask in masked_weights(model):
        weight.mul_(mask)


@contextmanager
def open_masks(model: nn.Module):
    """Temporarily set every mask to ones, restoring the saved masks on exit.

    Inside, the gradient at dormant positions is the gradient of the loss with
    respect to those connections, which growth ranks. Outputs are unchanged
    because dormant weights are held at exactly zero. Run forward AND backward
    inside the block: autograd saved the open masks.
    """
    saved = get_masks(model)
    with torch.no_grad():
        for _, _, mask in masked_weights(model):
            mask.fill_(1)
    try:
        yield model
    finally:
        set_masks(model, saved)


@torch.no_grad()
def random_masks(model: nn.Module, density: float, generator: torch.Generator) -> None:
    """Give every mask exactly ``round(density * numel)`` random ones, then apply.

    An exact count (not independent Bernoulli draws) makes the sparse seed's
    size reproducible and identical across matrices of the same shape.
    """
    if not 0.0 <= density <= 1.0:
        raise UserError(f"mask density {density} is outside [0, 1]", "choose a density between 0 and 1")
    for _, _, mask in masked_weights(model):
        n = mask.numel()
        order = torch.randperm(n, generator=generator, device=generator.device).to(mask.device)
        flat = torch.zeros(n, dtype=mask.dtype, device=mask.device)
        flat[order[: round(density * n)]] = 1
        mask.copy_(flat.view_as(mask))
    apply_masks(model)


def sparsity_stats(model: nn.Module) -> dict:
    """``{"total", "active", "sparsity"}`` over all masked entries (biases are never masked)."""
    total = active = 0
    for _, _, mask in masked_weights(model):
        total += mask.numel()
        active += int(mask.count_nonzero().item())
    sparsity = 1.0 - active / total if total else 0.0
    return {"total": total, "active": active, "sparsity": sparsity}


def get_masks(model: nn.Module) -> dict[str, Tensor]:
    """Clones of all masks keyed by their weight's qualified name."""
    return {name: mask.detach().clone() for name, _, mask in masked_weights(model)}


@torch.no_grad()
def set_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Copy ``masks`` into the model's mask buffers (weights are not touched).

    Every masked weight must be given, with its exact shape, because a partial
    or mis-shaped set means the masks came from a different model. Call
    :func:`apply_masks` afterwards if newly masked weights must become zero.
    """
    own = {name: mask for name, _, mask in masked_weights(model)}
    if set(own) != set(masks):
        missing, extra = sorted(set(own) - set(masks)), sorted(set(masks) - set(own))
        raise UserError(
            f"masks do not match the model (missing {missing}, unexpected {extra})",
            "load masks saved from a model of the same architecture",
        )
    for name, mask in own.items():
        if tuple(masks[name].shape) != tuple(mask.shape):
            raise UserError(
                f"mask {name} has shape {tuple(masks[name].shape)}, the model needs {tuple(mask.shape)}",
                "load masks saved from a model of the same size",
            )
    for name, mask in own.items():
        mask.copy_(masks[name])
