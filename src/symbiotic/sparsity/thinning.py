"""Physically smaller (thin) or larger (widen) dense models with identical outputs.

Masks only simulate a small model; latency on hardware depends on the actual
matrix sizes. :func:`thin` drops inactive units so the matrices shrink, and
:func:`widen` is its inverse for growth: it adds dormant units (zero weights,
zero masks) that can later be woken. Both copy tensors through the same unit
layout (:func:`symbiotic.sparsity.units.layout`), so every parameter and mask
is moved by one routine; tensors without units (convolutions, say) are copied whole.
Any model class with ``unit_keys``/``unit_links`` (its unit table), ``widths``
(unit key -> width of one block) and ``resized`` works.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from symbiotic.errors import UserError
from symbiotic.sparsity.masks import MASK_PREFIX
from symbiotic.sparsity.units import Link, active_units, layout, unit_key

__all__ = ["thin", "widen", "thin_index"]


def _block_keep(active: Tensor) -> Tensor:
    """Flat kept indices b*W+i for active (blocks, W), the same count m in every block.

    A dense layer needs equal gate widths, so blocks (gates) with fewer active
    units also keep their first inactive ones; those have all-zero outgoing
    columns and change nothing. With one block this keeps exactly the active units.
    """
    m = active.sum(1).max() if active.numel() else 0
    need = m - active.sum(1, keepdim=True)  # (blocks, 1) padding per block
    pad = ~active & ((~active).cumsum(1) <= need)
    return (active | pad).flatten().nonzero().view(-1)  # row-major = block-major, length blocks*m


@torch.no_grad()
def thin_index(model: nn.Module) -> dict[str, Tensor]:
    """Kept unit indices per unit key (ascending; block-major, blocks*m long)."""
    return {k.name: _block_keep(k.by_block(active_units(model, k.name))) for k in model.unit_keys()}


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


def _tensors(model: nn.Module) -> dict[str, Tensor]:
    return dict(model.named_parameters()) | dict(model.named_buffers())


def _copy(src: nn.Module, dst: nn.Module, index: dict[str, Tensor], into_big: bool) -> None:
    """Move every tensor of ``src`` into ``dst``: unit-indexed ones through ``index`` (gather
    when shrinking, scatter when growing), the rest (no units) whole."""
    src_t, dst_t = _tensors(src), _tensors(dst)
    big_t, small_t = (dst_t, src_t) if into_big else (src_t, dst_t)
    done = set()
    for link in layout(dst if into_big else src):
        for name in (link.name, _mask_name(link.name)):
            if name in big_t:
                big, small = big_t[name], small_t[name]
                ix = _index_tuple(big, link, index, small.shape)
                if into_big:
                    big[ix] = small
                else:
                    small.copy_(big[ix])
                done.add(name)
    for name, t in dst_t.items():
        if name not in done:
            t.copy_(src_t[name])


def _empty_like(model: nn.Module, cfg) -> nn.Module:
    """A zeroed model of ``cfg`` on ``model``'s device and dtype, without touching the RNG.

    Building on the meta device skips the random init (which would advance the
    global generator and perturb a training run); every tensor is then
    overwritten anyway, except the running variances of batch norms on new
    units, which start at 1 (a zero variance would blow their inputs up).
    """
    ref = next(model.parameters())
    with torch.device("meta"):
        new = type(model)(cfg)
    new = new.to(dtype=ref.dtype).to_empty(device=ref.device)
    with torch.no_grad():
        for t in list(new.parameters()) + list(new.buffers()):
            t.zero_()
        for module in new.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    return new.train(model.training)


@torch.no_grad()
def thin(model: nn.Module) -> nn.Module:
    """A new model keeping only active units; in eval its outputs equal ``model``'s.

    The final state of the new model equals the old one's restricted to the
    kept hidden units (``thin_index(model)["hidden.{l}"]``).
    """
    index = thin_index(model)
    widths = {k: len(ix) // unit_key(model, k).blocks for k, ix in index.items()}
    new = _empty_like(model, model.resized(widths))
    _copy(model, new, index, into_big=False)
    return new


def _check_growth(model: nn.Module, widths: dict[str, int]) -> None:
    old = model.widths()
    if set(widths) != set(old):
        raise UserError(f"widen to widths for {sorted(widths)}, the model has {sorted(old)}",
                        "give one width per unit key of the model")
    smaller = {k: (widths[k], old[k]) for k in old if widths[k] < old[k]}
    if smaller:
        key, (new, cur) = next(iter(smaller.items()))
        raise UserError(f"widen {key} to {new} is smaller than its current {cur}",
                        "request sizes at least as large as the current ones (use thin to shrink)")


@torch.no_grad()
def widen(model: nn.Module, widths: dict[str, int]) -> nn.Module:
    """A larger model (``widths``: unit key -> width of one block): old weights and
    masks first in every block of every axis, new units dormant.

    New rows/columns have zero weight AND zero mask, so outputs are identical
    and growth decides which of them to wake.
    """
    _check_growth(model, widths)
    new = _empty_like(model, model.resized(widths))
    device = next(model.parameters()).device
    # where each old unit sits in the new model: the first positions of every block
    index = {key: unit_key(model, key).positions(widths[key], 0, old, device)
             for key, old in model.widths().items()}
    _copy(model, new, index, into_big=True)
    new.train(model.training)
    return new
