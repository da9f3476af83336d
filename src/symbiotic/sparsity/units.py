"""Structured units of an H-LSTM model: what row/column pruning removes.

A unit is one neuron whose removal deletes whole rows and columns:

- ``"embed"``     the E embedding dimensions (language model);
- ``"hidden.{l}"`` the H_l hidden units of layer l;
- ``"gate.{l}"``   the 4*G_l gate-hidden neurons of layer l, index k*G + g
  (neuron g of gate k, matching the gate-major rows of ``u_x``).

Every tensor is described once by a :class:`Link`: which unit key its
entries PRODUCE (``dst``) and which they READ (``src``), each with the tensor
axes that index the units. Incoming connections of a unit are the links that
produce it, outgoing ones the links that read it. Each model class writes its
own table (``unit_keys()``, ``unit_links()``); everything here, and thinning
and widening, works from that table alone, so the steps stay model-agnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symbiotic.models.hlstm import GATES
from symbiotic.sparsity.masks import masked_weights

__all__ = [
    "Link",
    "layout",
    "unit_keys",
    "unit_count",
    "unit_scores",
    "active_units",
    "remove_units",
    "wake_units",
    "dims",
    "touches",
    "per_unit",
]

SCORE_RULES = ("control", "all")  # what unit_scores sums: control-gate matrices (the paper) or every tensor
End = tuple[str, tuple[int, ...]]  # (unit key, axes of the tensor that index its units, ascending)


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


def hlstm_links(prefix: str, input_key: str | None, gate: str, hidden: str) -> list[Link]:
    """The five parameters of one HLSTMLayer at ``prefix``; ``input_key`` None: its input is no unit."""
    return [
        Link(prefix + "u_x", (gate, (0,)), None if input_key is None else (input_key, (1,)), control=True),  # (4G, I)
        Link(prefix + "u_h", (gate, (0,)), (hidden, (1,)), control=True),  # (4G, H)
        Link(prefix + "u_b", (gate, (0,)), None),  # (4G,)
        Link(prefix + "w", (hidden, (1,)), (gate, (0, 2)), control=True),  # (4, H, G): axes 0,2 flatten to k*G+g
        Link(prefix + "w_b", (hidden, (1,)), None),  # (4, H)
    ]


@torch.no_grad()
def init_new_hlstm_units(layer, kind: str, index: Tensor, generator: torch.Generator) -> None:
    """Random biases for grown units of one HLSTMLayer, in a fresh layer's range.

    A brand-new unit with all-zero weights and biases has zero activation and
    so zero gradient everywhere; a bias gives it an activation and its
    outgoing connections a gradient. A gate neuron sits behind a ReLU, so its
    bias must be positive: a negative one outputs zero and the neuron never
    learns. It is drawn from [bound/10, bound] (never zero).
    """
    if kind == "gate":
        bound = 1.0 / (layer.input_size + layer.hidden_size) ** 0.5
        layer.u_b[index] = (0.1 + 0.9 * torch.rand(len(index), generator=generator)) * bound
    elif kind == "hidden":
        bound = 1.0 / layer.gate_hidden ** 0.5
        layer.w_b[:, index] = (torch.rand(GATES, len(index), generator=generator) * 2 - 1) * bound


def layout(model: nn.Module) -> list[Link]:
    """Every tensor of ``model`` that carries units, with the unit keys on its axes."""
    return model.unit_links()


def unit_keys(model: nn.Module) -> list[str]:
    """The model's unit keys in input-to-output order, e.g. ``["embed", "gate.0", "hidden.0"]``."""
    return model.unit_keys()


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
def unit_scores(model: nn.Module, key: str, rule: str = "control") -> Tensor:
    """Sum of |weight * mask| over each unit's rows and columns, in and out, (n_units,).

    ``rule`` "control": over the control-gate matrices only (u_x, u_h, w of every H-LSTM
    layer), as the paper's Algorithm 1 ranks them. "all": over every tensor the unit touches,
    biases, embedding and decoder included (they are removed with the unit); there the
    embedding matrix and the decoder dominate the scores of the units they touch.
    """
    if rule not in SCORE_RULES:
        raise ValueError(f"rule must be one of {SCORE_RULES}, got {rule!r}")
    params, masks = _tensors(model)
    scores = torch.zeros(unit_count(model, key), device=params[touches(model, key)[0].name].device)
    for t in touches(model, key):
        if rule == "control" and not t.control:
            continue
        w = params[t.name].detach()
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
    """Active units per key; gate keys give the widest gate's count (what a dense
    four-gate layer would need after thinning)."""
    out = {}
    for key in unit_keys(model):
        active = active_units(model, key)
        if key.startswith("gate."):
            out[key] = int(active.view(GATES, active.numel() // GATES).sum(1).max().item())
        else:
            out[key] = int(active.sum().item())
    return out


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
