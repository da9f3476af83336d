"""Physically smaller (thin) or larger (widen) dense models with identical outputs.

Masks only simulate a small model; latency on hardware depends on the actual
matrix sizes. :func:`thin` drops inactive units so the matrices shrink, and
:func:`widen` is its inverse for growth: it adds dormant units (zero weights,
zero masks) that can later be woken. Both copy tensors through the same unit
layout (:func:`symbiotic.sparsity.units.layout`), so every parameter and mask
is moved by one routine.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from symbiotic.errors import UserError
from symbiotic.models.hlstm import GATES
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.sparsity.masks import MASK_PREFIX
from symbiotic.sparsity.units import Link, active_units, layout, unit_keys

__all__ = ["thin", "widen", "thin_index"]


def _gate_keep(active: Tensor) -> Tensor:
    """Flat kept indices k*G+g for active (4, G), the same count m in every gate.

    A dense layer needs equal gate widths, so gates with fewer active neurons
    also keep their first inactive ones; those have all-zero outgoing W
    columns and change nothing.
    """
    m = active.sum(1).max() if active.numel() else 0
    need = m - active.sum(1, keepdim=True)  # (4, 1) padding per gate
    pad = ~active & ((~active).cumsum(1) <= need)
    return (active | pad).flatten().nonzero().view(-1)  # row-major = gate-major, length 4m


@torch.no_grad()
def thin_index(model: HLSTMLanguageModel) -> dict[str, Tensor]:
    """Kept unit indices per unit key (ascending; gate keys gate-major, 4*m long)."""
    index = {}
    for key in unit_keys(model):
        active = active_units(model, key)
        if key.startswith("gate."):
            index[key] = _gate_keep(active.view(GATES, active.numel() // GATES))
        else:
            index[key] = active.nonzero().view(-1)
    return index


def _index_tuple(big: Tensor, link: Link, index: dict[str, Tensor], small_shape) -> tuple[Tensor, ...]:
    """Advanced index into ``big`` selecting a tensor of ``small_shape``.

    ``index[key]`` holds flat unit indices in ``big``'s unit space, ordered as
    the small tensor's units; axes with no unit key are taken whole. Each axis
    gets an index tensor shaped to broadcast, so ``big[ix]`` gathers and
    ``big[ix] = small`` scatters.
    """
    n = big.dim()
    ix: list[Tensor | None] = [None] * n
    for end in (link.dst, link.src):
        if end is None:
            continue
        key, axes = end
        per_axis = torch.unravel_index(index[key].to(big.device), tuple(big.shape[a] for a in axes))
        view = [small_shape[a] if a in axes else 1 for a in range(n)]
        for a, t in zip(axes, per_axis):
            ix[a] = t.reshape(view)
    for a in range(n):
        if ix[a] is None:
            ix[a] = torch.arange(small_shape[a], device=big.device).view([-1 if b == a else 1 for b in range(n)])
    return tuple(ix)


def _mask_name(name: str) -> str:
    prefix, _, leaf = name.rpartition(".")
    return f"{prefix}.{MASK_PREFIX}{leaf}" if prefix else MASK_PREFIX + leaf


def _pairs(small: HLSTMLanguageModel, big: HLSTMLanguageModel):
    """(link, big tensor, small tensor) for every parameter and its mask, if any."""
    small_t = dict(small.named_parameters()) | dict(small.named_buffers())
    big_t = dict(big.named_parameters()) | dict(big.named_buffers())
    for link in layout(big):
        for name in (link.name, _mask_name(link.name)):
            if name in big_t:
                yield link, big_t[name], small_t[name]


def _empty_like(model: HLSTMLanguageModel, cfg: LMConfig) -> HLSTMLanguageModel:
    """A zeroed model of ``cfg`` on ``model``'s device and dtype, without touching the RNG.

    Building on the meta device skips the random init (which would advance the
    global generator and perturb a training run); every tensor is then
    overwritten anyway.
    """
    ref = model.decoder_w
    with torch.device("meta"):
        new = HLSTMLanguageModel(cfg)
    new = new.to(dtype=ref.dtype).to_empty(device=ref.device)
    with torch.no_grad():
        for t in list(new.parameters()) + list(new.buffers()):
            t.zero_()
    return new.train(model.training)


@torch.no_grad()
def thin(model: HLSTMLanguageModel) -> HLSTMLanguageModel:
    """A new model keeping only active units; in eval its outputs equal ``model``'s.

    The final state of the new model equals the old one's restricted to the
    kept hidden units (``thin_index(model)["hidden.{l}"]``).
    """
    index = thin_index(model)
    L = len(model.layers)
    cfg = dataclasses.replace(
        model.config,
        embed=len(index["embed"]),
        hidden=tuple(len(index[f"hidden.{l}"]) for l in range(L)),
        gate_hidden=tuple(len(index[f"gate.{l}"]) // GATES for l in range(L)),
    )
    new = _empty_like(model, cfg)
    for link, big, small in _pairs(new, model):
        small.copy_(big[_index_tuple(big, link, index, small.shape)])
    return new


def _check_growth(cfg: LMConfig, embed: int, hidden: tuple, gate_hidden: tuple) -> None:
    if len(hidden) != len(cfg.hidden) or len(gate_hidden) != len(cfg.gate_hidden):
        raise UserError(
            f"widen to {len(hidden)} hidden / {len(gate_hidden)} gate sizes, the model has {len(cfg.hidden)} layers",
            "give one hidden and one gate_hidden size per existing layer",
        )
    old = (cfg.embed, *cfg.hidden, *cfg.gate_hidden)
    new = (embed, *hidden, *gate_hidden)
    if any(n < o for n, o in zip(new, old)):
        raise UserError(
            f"widen to embed={embed} hidden={tuple(hidden)} gate_hidden={tuple(gate_hidden)} is smaller than "
            f"the current embed={cfg.embed} hidden={cfg.hidden} gate_hidden={cfg.gate_hidden}",
            "request sizes at least as large as the current ones (use thin to shrink)",
        )


@torch.no_grad()
def widen(model: HLSTMLanguageModel, embed: int, hidden: tuple, gate_hidden: tuple) -> HLSTMLanguageModel:
    """A larger model: old weights and masks first in every axis, new units dormant.

    New rows/columns have zero weight AND zero mask, so outputs are identical
    and growth decides which of them to wake.
    """
    cfg = model.config
    _check_growth(cfg, embed, tuple(hidden), tuple(gate_hidden))
    wide = dataclasses.replace(cfg, embed=embed, hidden=tuple(hidden), gate_hidden=tuple(gate_hidden))
    new = _empty_like(model, wide)
    device = model.decoder_w.device
    # Where each old unit sits in the new model: first positions, per gate for gate keys.
    index = {"embed": torch.arange(cfg.embed, device=device)}
    for l, (h_old, g_old) in enumerate(zip(cfg.hidden, cfg.gate_hidden)):
        index[f"hidden.{l}"] = torch.arange(h_old, device=device)
        starts = torch.arange(GATES, device=device).unsqueeze(1) * gate_hidden[l]  # (4, 1)
        index[f"gate.{l}"] = (starts + torch.arange(g_old, device=device)).flatten()
    for link, big, small in _pairs(model, new):
        big[_index_tuple(big, link, index, small.shape)] = small
    return new
