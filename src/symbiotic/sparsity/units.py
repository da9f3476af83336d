"""Structured units of a model: what row/column pruning removes.

A unit is one neuron whose removal deletes whole rows and columns. The H-LSTM
models have

- ``"embed"``     the E embedding dimensions (language model);
- ``"hidden.{l}"`` the H_l hidden units of layer l;
- ``"gate.{l}"``   the 4*G_l gate-hidden neurons of layer l, index k*G + g
  (neuron g of gate k, matching the gate-major rows of ``u_x``).

Each key is described by a :class:`UnitKey`: how many equal blocks its units
come in (4 for a gate key, 1 otherwise), so that "unit k*G + g" is data, not
the spelling of the key. Every tensor is described once by a :class:`Link`:
which unit key its entries PRODUCE (``dst``) and which they READ (``src``),
each with the tensor axes that index the units. Incoming connections of a unit
are the links that produce it, outgoing ones the links that read it. Each
model class writes its own table (``unit_keys()``: UnitKeys in input-to-output
order, ``unit_links()``: Links); everything here, and thinning and widening,
works from that table alone, so the steps stay model-agnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symbiotic.sparsity.masks import masked_weights

__all__ = [
    "UnitKey",
    "Link",
    "Touch",
    "layout",
    "unit_keys",
    "unit_key",
    "unit_count",
    "appended_units",
    "unit_scores",
    "active_units",
    "remove_units",
    "wake_units",
    "fill_units",
    "dims",
    "touches",
    "per_unit",
]

SCORE_RULES = ("control", "all")  # what unit_scores sums: control-gate matrices (the paper) or every tensor
End = tuple[str, tuple[int, ...]]  # (unit key, axes of the tensor that index its units, ascending)


@dataclass(frozen=True)
class UnitKey:
    """One unit key and how its units are numbered.

    The units come in ``blocks`` equal blocks that always keep one width (the
    four gates of an H-LSTM layer: a dense layer needs equal gate widths). With
    width W, unit b*W + i is unit i of block b; a key's width counts one block.
    """

    name: str
    blocks: int = 1

    def by_block(self, values: Tensor) -> Tensor:
        """A per-unit vector (n_units,) viewed as (blocks, width)."""
        return values.view(self.blocks, values.numel() // self.blocks)

    def positions(self, width: int, lo: int, hi: int, device=None) -> Tensor:
        """Flat indices of units lo..hi-1 of every block, for a key of ``width``, ascending."""
        starts = torch.arange(self.blocks, device=device).unsqueeze(1) * width  # (blocks, 1)
        return (starts + torch.arange(lo, hi, device=device)).flatten()


@dataclass(frozen=True)
class Link:
    """One parameter: the units it produces (``dst``) and reads (``src``), or None."""

    name: str  # qualified name in model.named_parameters() (or named_buffers() if ``buffer``)
    dst: End | None
    src: End | None
    buffer: bool = False  # a running statistic: resized with its unit, never scored or pruned
    control: bool = False  # a control-gate matrix (u_x, u_h, w): what the paper's Algorithm 1 scores


@dataclass(frozen=True)
class Touch:
    """A parameter seen from one unit key: its unit axes and the unit at the other end."""

    name: str
    axes: tuple[int, ...]
    other: End | None
    outgoing: bool
    control: bool = False


def layout(model: nn.Module) -> list[Link]:
    """Every tensor of ``model`` that carries units, with the unit keys on its axes."""
    return model.unit_links()


def unit_keys(model: nn.Module) -> list[str]:
    """The model's unit keys in input-to-output order, e.g. ``["embed", "gate.0", "hidden.0"]``."""
    return [k.name for k in model.unit_keys()]


def unit_key(model: nn.Module, key: str) -> UnitKey:
    """The description of unit key ``key`` in the model's table."""
    for k in model.unit_keys():
        if k.name == key:
            return k
    raise KeyError(f"unknown unit key {key!r}; the model has {unit_keys(model)}")


def appended_units(model: nn.Module, key: str, old: int, new: int) -> Tensor:
    """Indices of the units that widening ``key`` from width ``old`` to ``new`` adds:
    the last ``new - old`` of every block, in the widened model's numbering (on the CPU)."""
    return unit_key(model, key).positions(new, old, new)


def touches(model: nn.Module, key: str) -> list[Touch]:
    out = []
    for link in layout(model):
        if link.buffer:
            continue
        if link.dst is not None and link.dst[0] == key:
            out.append(Touch(link.name, link.dst[1], link.src, outgoing=False, control=link.control))
        if link.src is not None and link.src[0] == key:
            out.append(Touch(link.name, link.src[1], link.dst, outgoing=True, control=link.control))
    if not out:
        raise KeyError(f"unknown unit key {key!r}; the model has {unit_keys(model)}")
    return out


def _tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    params = dict(model.named_parameters())
    masks = {name: mask for name, _, mask in masked_weights(model)}
    return params, masks


def _size(shape, axes) -> int:
    return math.prod(shape[a] for a in axes)


def per_unit(t: Tensor, axes: tuple[int, ...]) -> Tensor:
    """t viewed as (n_units, rest): unit axes first, flattened in the given order."""
    rest = [a for a in range(t.dim()) if a not in axes]
    return t.permute(*axes, *rest).reshape(_size(t.shape, axes), -1)


def _spread(vec: Tensor, shape, axes: tuple[int, ...]) -> Tensor:
    """A per-unit vector reshaped to broadcast against a tensor of ``shape``."""
    return vec.view([shape[a] if a in axes else 1 for a in range(len(shape))])


def unit_count(model: nn.Module, key: str) -> int:
    """How many units (active or not) ``key`` has in the current tensors."""
    params, _ = _tensors(model)
    touch = touches(model, key)[0]
    return _size(params[touch.name].shape, touch.axes)


def _selection(model: nn.Module, key: str, index) -> Tensor:
    params, _ = _tensors(model)
    device = params[touches(model, key)[0].name].device
    sel = torch.zeros(unit_count(model, key), dtype=torch.bool, device=device)
    sel[torch.as_tensor(index, dtype=torch.long, device=device)] = True
    return sel


@torch.no_grad()
def unit_scores(model: nn.Module, key: str, rule: str = "control",
                values: dict[str, Tensor] | None = None) -> Tensor:
    """Sum of |weight * mask| over each unit's rows and columns, in and out, (n_units,).

    ``rule`` "control": over the control-gate matrices only (u_x, u_h, w of every H-LSTM
    layer), as the paper's Algorithm 1 ranks them. "all": over every tensor the unit touches,
    biases, embedding and decoder included (they are removed with the unit); there the
    embedding matrix and the decoder dominate the scores of the units they touch.
    ``values`` (full-shape tensors by parameter name, e.g. gradients): sum |values * mask|
    instead of the weights, as Algorithm 2 ranks dormant units by their gradient sums.
    """
    if rule not in SCORE_RULES:
        raise ValueError(f"rule must be one of {SCORE_RULES}, got {rule!r}")
    params, masks = _tensors(model)
    source = params if values is None else values
    scores = torch.zeros(unit_count(model, key), device=params[touches(model, key)[0].name].device)
    for t in touches(model, key):
        if (rule == "control" and not t.control) or t.name not in source:
            continue
        w = source[t.name].detach()
        w = (w * masks[t.name] if t.name in masks else w).abs()
        scores += per_unit(w, t.axes).sum(1).to(scores)
    return scores


@torch.no_grad()
def active_units(model: nn.Module, key: str) -> Tensor:
    """Bool (n_units,): True iff any OUTGOING mask entry of the unit is 1.

    A unit whose outgoing connections are all masked cannot affect the output,
    so it can be removed without changing anything.
    """
    params, masks = _tensors(model)
    links = touches(model, key)
    active = torch.zeros(unit_count(model, key), dtype=torch.bool, device=params[links[0].name].device)
    for t in links:
        if t.outgoing:
            m = masks.get(t.name, torch.ones_like(params[t.name]))  # unmasked = all connected
            active |= per_unit(m != 0, t.axes).any(1)
    return active


@torch.no_grad()
def remove_units(model: nn.Module, key: str, index) -> None:
    """Zero the masks and weights of every row and column (in and out) of units ``index``."""
    params, masks = _tensors(model)
    sel = _selection(model, key, index)
    for t in touches(model, key):
        region = _spread(sel, params[t.name].shape, t.axes)
        params[t.name].masked_fill_(region, 0)
        if t.name in masks:
            masks[t.name].masked_fill_(region, 0)


def _init_value(init: dict[str, Tensor] | None, name: str, like: Tensor) -> Tensor:
    if init is None or name not in init:
        return torch.zeros_like(like)
    if tuple(init[name].shape) != tuple(like.shape):
        raise ValueError(f"init[{name!r}] has shape {tuple(init[name].shape)}, expected {tuple(like.shape)}")
    return init[name].to(like)


@torch.no_grad()
def wake_units(model: nn.Module, key: str, index, init: dict[str, Tensor] | None = None) -> None:
    """Set masks to 1 on every row/column of units ``index`` whose other end is active.

    Connections to removed (inactive) units stay dormant: reviving them would
    make a removed unit's weights matter again. Newly woken masked entries, and
    the unmasked entries (biases, embedding columns) of units that were
    inactive, take their value from ``init`` (full-shape tensors keyed by
    qualified parameter name, e.g. gradient x learning rate), else zero.
    """
    params, masks = _tensors(model)
    sel = _selection(model, key, index)
    links = touches(model, key)
    # Read every activity before writing: waking must not depend on touch order.
    was_inactive = ~active_units(model, key)
    other = {t.other[0]: active_units(model, t.other[0]) for t in links if t.other is not None}
    for t in links:
        p = params[t.name]
        region = _spread(sel, p.shape, t.axes).expand(p.shape)
        if t.other is not None:
            region = region & _spread(other[t.other[0]], p.shape, t.other[1])
        if t.name in masks:
            woken = region & (masks[t.name] == 0)
            masks[t.name].masked_fill_(region, 1)
        else:
            woken = region & _spread(was_inactive, p.shape, t.axes)
        p.copy_(torch.where(woken, _init_value(init, t.name, p), p))


@torch.no_grad()
def dims(model: nn.Module) -> dict[str, int]:
    """Active units per key, counted in the widest block (what a dense layer would
    need after thinning: a gate key's four gates keep one width)."""
    by_block = {k.name: k.by_block(active_units(model, k.name)) for k in model.unit_keys()}
    return {key: int(active.sum(1).max().item()) for key, active in by_block.items()}


@torch.no_grad()
def fill_units(model: nn.Module, key: str, index, values: dict[str, Tensor]) -> None:
    """Set the still-zero entries of every row/column of units ``index`` from ``values``.

    For growth whose masks were opened before the initial values were known
    (gradient x learning rate needs the gradient of the opened connections).
    Masked entries stay zero: call ``apply_masks`` (done here) afterwards.
    """
    params, masks = _tensors(model)
    sel = _selection(model, key, index)
    for t in touches(model, key):
        p = params[t.name]
        region = _spread(sel, p.shape, t.axes).expand(p.shape) & (p == 0)
        p.copy_(torch.where(region, _init_value(values, t.name, p), p))
        if t.name in masks:
            p.mul_(masks[t.name])
