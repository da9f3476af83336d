"""Gradient-based weight growth: which dormant connections to wake.

Growth (the paper's stage a, and the row/column growth of stage c) starts
from a sparse seed and activates the dormant connections whose loss gradient
is largest, because those are the ones that would reduce the loss fastest if
they were allowed to move. The gradient must be taken with respect to the
EFFECTIVE weight (``weight * mask``), since the gradient of the raw parameter
at a masked-out position is zero.

The decision functions are pure, in the style of ``torch.nn.utils.prune``'s
``compute_mask``: they return a new mask and never mutate their inputs, and
an active entry is never changed. Counts are exact (see
:func:`symbiotic.sparsity.pruning.count_for_ratio`) and ties go to the lower
flat index, so the same gradients always wake the same entries.
"""

from __future__ import annotations

import torch
from torch import Tensor

from symbiotic.sparsity.pruning import concatenated, count_for_ratio, select_extreme, split_indices

__all__ = ["POPULATIONS", "grow_mask", "grow_masks", "strongest_candidates", "GradientAccumulator"]


def _dormant(mask: Tensor) -> Tensor:
    return mask == 0


def _with_set(mask: Tensor, flat_idx: Tensor) -> Tensor:
    out = mask.clone()
    out.view(-1)[flat_idx] = 1
    return out


POPULATIONS = ("matrix", "dormant")  # what the growth percentile is taken over


def _chosen(scores: Tensor, dormant: Tensor, ratio: float, population: str) -> Tensor:
    """Flat indices to wake among flat ``scores`` (|gradient|) and ``dormant`` (bool).

    ``"matrix"`` (the paper): an entry wakes when its gradient reaches the
    (100(1 - ratio))th percentile of ALL entries' gradients, i.e. it is among
    the top ``ratio`` share of the whole matrix; active entries in that share
    simply stay active, so fewer than ``ratio`` of the matrix wakes.
    ``"dormant"``: the top ``ratio`` share of the dormant entries wakes.
    A zero (or NaN) gradient never wakes: it gives no evidence that the
    connection helps. Ties go to the lower flat index.
    """
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")
    live = scores > 0
    if population == "matrix":
        k = min(count_for_ratio(ratio, scores.numel()), int(live.sum().item()))
        top = select_extreme(scores, live, k, largest=True)
        return top[dormant[top]]
    cand = dormant & live
    k = min(count_for_ratio(ratio, int(dormant.sum().item())), int(cand.sum().item()))
    return select_extreme(scores, cand, k, largest=True)


def grow_mask(grad_mag: Tensor, mask: Tensor, ratio: float, population: str = "matrix") -> Tensor:
    """New mask waking dormant entries by |gradient| (see :func:`_chosen` for ``population``)."""
    if grad_mag.shape != mask.shape:
        raise ValueError(f"gradient {tuple(grad_mag.shape)} and mask {tuple(mask.shape)} differ in shape")
    flat = grad_mag.detach().abs().reshape(-1).to(torch.float64)
    return _with_set(mask, _chosen(flat, _dormant(mask).reshape(-1), ratio, population))


def grow_masks(
    grads: dict[str, Tensor],
    masks: dict[str, Tensor],
    ratio: float,
    scope: str = "global",
    population: str = "matrix",
) -> dict[str, Tensor]:
    """Grow several matrices; returns a new mask for every key of ``masks``.

    ``"global"`` ranks the entries of all matrices together (one
    percentile), so connections go where the gradient is largest, whichever
    matrix that is; ties across matrices go to the matrix that comes first in
    ``masks``. ``"per_matrix"`` takes the percentile within each matrix.
    """
    missing = [name for name in masks if name not in grads]
    if missing:
        raise ValueError(f"no gradient for masked tensor(s): {', '.join(missing)}")
    if scope == "per_matrix":
        return {name: grow_mask(grads[name], mask, ratio, population) for name, mask in masks.items()}
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'per_matrix', got {scope!r}")
    names = list(masks)
    if not names:
        return {}
    for name in names:
        if grads[name].shape != masks[name].shape:
            raise ValueError(
                f"{name}: gradient {tuple(grads[name].shape)} and mask {tuple(masks[name].shape)} differ in shape"
            )
    scores, dormant = concatenated(grads, masks, _dormant)
    chosen = split_indices(_chosen(scores, dormant, ratio, population), masks)
    return {n: _with_set(masks[n], chosen[n]) for n in names}


def strongest_candidates(scores: Tensor, blocks: int, old: int, needed: int) -> Tensor:
    """Algorithm 2's choice of dormant rows/columns: which candidate units wake.

    ``scores`` holds one gradient sum per unit of one unit key, block-major
    (``blocks`` = 4 for a gate key, whose unit k*P+g is neuron g of gate k;
    1 otherwise). In each block the units from ``old`` on are the candidates;
    the ``needed`` of them with the largest score wake, ties to the lower
    index, NaN last. Returns their flat indices, ascending.
    """
    per_block = scores.detach().reshape(blocks, -1).to(torch.float64)
    pool = per_block.shape[1]
    if not 0 <= old <= pool or not 0 <= needed <= pool - old:
        raise ValueError(f"need {needed} of the {pool - old} candidates from {old} of {pool} units per block")
    cand = torch.nan_to_num(per_block[:, old:], nan=-torch.inf)
    order = torch.argsort(-cand, dim=1, stable=True)[:, :needed]  # stable: ties keep index order
    starts = torch.arange(blocks, device=order.device).unsqueeze(1) * pool
    return (order + old + starts).flatten().sort().values


class GradientAccumulator:
    """Gradient magnitude averaged over many batches, per named tensor.

    The paper ranks dormant connections by the gradient of the loss over the
    training set. That gradient is the mean of the per-batch gradients, so
    this sums the SIGNED per-batch gradients and :meth:`mean_magnitude`
    returns ``|sum / batches|``. (Averaging ``|grad|`` instead would reward
    connections whose gradient merely flips sign from batch to batch, which
    would not lower the training-set loss.)

    A ``None`` gradient (a tensor that took no part in a batch) counts as a
    zero gradient for that batch. Sums are kept in float32 or wider on the
    gradients' device.
    """

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self.batches = 0

    def add(self, named_grads: dict[str, Tensor | None]) -> None:
        """Add one batch's gradients (detached copies; inputs are not kept)."""
        for name, grad in named_grads.items():
            if grad is None:
                continue
            g = grad.detach()
            if not g.is_floating_point() or g.dtype in (torch.float16, torch.bfloat16):
                g = g.float()
            if name in self._sums:
                if self._sums[name].shape != g.shape:
                    raise ValueError(
                        f"{name}: gradient shape {tuple(g.shape)} differs from earlier {tuple(self._sums[name].shape)}"
                    )
                self._sums[name] += g.to(self._sums[name].dtype)
            else:
                self._sums[name] = g.clone()
        self.batches += 1

    def mean(self) -> dict[str, Tensor]:
        """The signed mean gradient per name over all batches added so far."""
        if self.batches == 0:
            raise ValueError("no batches added; call add() at least once")
        return {name: s / self.batches for name, s in self._sums.items()}

    def mean_magnitude(self) -> dict[str, Tensor]:
        """``|mean gradient|`` per name over all batches added so far."""
        return {name: m.abs() for name, m in self.mean().items()}

    def reset(self) -> None:
        """Forget everything, e.g. before the next growth step."""
        self._sums.clear()
        self.batches = 0
