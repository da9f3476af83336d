"""Magnitude pruning decisions: which weights, rows or columns to drop.

Every function here is a pure mask decision in the style of
``torch.nn.utils.prune``'s ``compute_mask``: it reads tensors and returns a new
mask (or a list of unit indices) without touching its inputs. Applying the
decision, retraining and rolling back are the caller's business, so the same
decision code serves weight pruning (paper's stage d) and row/column pruning
(Algorithm 1, stage b).

Counts are exact: ``ratio`` of ``n`` means :func:`count_for_ratio` entries
(round half up), and ties in magnitude are broken by flat index (the lower
index goes first), so a run is reproducible and the count never drifts the way
a percentile threshold with ties would.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "count_for_ratio",
    "select_extreme",
    "concatenated",
    "split_indices",
    "prune_mask",
    "prune_masks",
    "smallest_units",
    "smallest_units_per_group",
]


def count_for_ratio(ratio: float, n: int) -> int:
    """How many of ``n`` items a ``ratio`` means: ``floor(ratio * n + 0.5)``.

    Round half up rather than Python's banker's rounding, so that the count
    grows monotonically with ``ratio`` and ``n`` and 0.5 of 1 unit is 1 unit.
    """
    if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    # The epsilon absorbs float noise such as 0.3 * 10 == 3.0000000000000004
    # or 0.15 * 10 == 1.4999999999999998 (meant as 1.5).
    return min(n, int(math.floor(ratio * n + 0.5 + 1e-9)))


def select_extreme(scores: Tensor, eligible: Tensor, k: int, largest: bool) -> Tensor:
    """Flat indices of the ``k`` eligible entries with the largest/smallest score.

    Ties go to the lower flat index (a stable sort), so the choice is
    deterministic. Ineligible entries are never chosen; asking for more than
    there are eligible entries is a ``ValueError`` because silently choosing
    fewer would break the exact-count promise of the callers.
    """
    flat = scores.detach().reshape(-1)
    ok = eligible.reshape(-1).to(torch.bool)
    if flat.shape != ok.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and eligible {tuple(eligible.shape)} differ in size")
    n_ok = int(ok.sum().item())
    if not 0 <= k <= n_ok:
        raise ValueError(f"cannot select {k} of {n_ok} eligible entries")
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=flat.device)
    key = (-flat if largest else flat).to(torch.float64)
    # A stable ascending sort keeps equal keys in index order; NaN sorts after
    # every number, so NaN scores are chosen last. Ineligible entries are
    # filtered out after sorting (not just pushed to +inf) so that an
    # eligible +inf score can never lose its place to one of them.
    order = torch.sort(key, stable=True).indices
    return order[ok[order]][:k]


def _active(mask: Tensor) -> Tensor:
    return mask != 0


def _with_cleared(mask: Tensor, flat_idx: Tensor) -> Tensor:
    out = mask.clone()
    out.view(-1)[flat_idx] = 0
    return out


def prune_mask(weight: Tensor, mask: Tensor, ratio: float) -> Tensor:
    """New mask with the ``ratio`` fraction of active entries of smallest |w| dropped.

    Exactly ``count_for_ratio(ratio, n_active)`` entries go; entries that are
    already dormant stay dormant and do not count towards the ratio, so
    repeated pruning compounds (each step removes a share of what is left).
    """
    if weight.shape != mask.shape:
        raise ValueError(f"weight {tuple(weight.shape)} and mask {tuple(mask.shape)} differ in shape")
    active = _active(mask)
    k = count_for_ratio(ratio, int(active.sum().item()))
    return _with_cleared(mask, select_extreme(weight.abs(), active, k, largest=False))


def _check_keys(weights: dict[str, Tensor], masks: dict[str, Tensor]) -> None:
    missing = [name for name in masks if name not in weights]
    if missing:
        raise ValueError(f"no weight for masked tensor(s): {', '.join(missing)}")
    for name, mask in masks.items():
        if weights[name].shape != mask.shape:
            raise ValueError(
                f"{name}: weight {tuple(weights[name].shape)} and mask {tuple(mask.shape)} differ in shape"
            )


def prune_masks(
    weights: dict[str, Tensor],
    masks: dict[str, Tensor],
    ratio: float,
    scope: str = "per_matrix",
) -> dict[str, Tensor]:
    """Prune several matrices; returns a new mask for every key of ``masks``.

    ``"per_matrix"`` removes the same share of every matrix, which keeps every
    matrix equally sparse. ``"global"`` ranks all active entries of all
    matrices together, so a matrix of small weights loses more; ties across
    matrices go to the matrix that comes first in ``masks``.
    """
    _check_keys(weights, masks)
    if scope == "per_matrix":
        return {name: prune_mask(weights[name], mask, ratio) for name, mask in masks.items()}
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'per_matrix', got {scope!r}")
    names = list(masks)
    if not names:
        return {}
    scores, active = concatenated(weights, masks, _active)
    k = count_for_ratio(ratio, int(active.sum().item()))
    chosen = split_indices(select_extreme(scores, active, k, largest=False), masks)
    return {n: _with_cleared(masks[n], chosen[n]) for n in names}


def concatenated(values: dict[str, Tensor], masks: dict[str, Tensor], eligible) -> tuple[Tensor, Tensor]:
    """|values| and ``eligible(mask)`` of every matrix of ``masks``, flattened and concatenated
    in the order of ``masks`` (float64 scores, on the first mask's device): one ranking over
    all matrices, for the global scopes of pruning and growth."""
    device = next(iter(masks.values())).device
    scores = torch.cat([values[n].detach().abs().reshape(-1).to(device, torch.float64) for n in masks])
    return scores, torch.cat([eligible(m).reshape(-1).to(device) for m in masks.values()])


def split_indices(flat_idx: Tensor, masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """Indices into the concatenation of :func:`concatenated`, as flat indices per matrix."""
    out, start = {}, 0
    for n, mask in masks.items():
        inside = (flat_idx >= start) & (flat_idx < start + mask.numel())
        out[n] = (flat_idx[inside] - start).to(mask.device)
        start += mask.numel()
    return out


def _unit_count(n_active: int, ratio: float | None, count: int | None) -> int:
    if (ratio is None) == (count is None):
        raise ValueError("give exactly one of ratio and count")
    if count is not None:
        if count < 0 or count > n_active:
            raise ValueError(f"cannot remove {count} of {n_active} active units")
        return count
    return count_for_ratio(ratio, n_active)


def _check_units(scores: Tensor, active: Tensor) -> None:
    if scores.dim() != 1 or active.shape != scores.shape:
        raise ValueError(
            f"scores and active must be 1-D of the same length, got {tuple(scores.shape)} and {tuple(active.shape)}"
        )


def smallest_units(
    scores: Tensor,
    active: Tensor,
    ratio: float | None = None,
    count: int | None = None,
) -> Tensor:
    """Indices (ascending) of the active units with the smallest scores.

    For row/column pruning: ``scores`` holds one number per row or column
    (e.g. its L1 or L2 norm) and ``active`` says which still exist. Exactly
    ``count`` units, or ``count_for_ratio(ratio, n_active)``, are returned;
    an inactive unit is never returned, ties go to the lower index.
    """
    _check_units(scores, active)
    active = active.to(torch.bool)
    k = _unit_count(int(active.sum().item()), ratio, count)
    return torch.sort(select_extreme(scores, active, k, largest=False)).values


def smallest_units_per_group(
    scores: Tensor,
    active: Tensor,
    groups: int,
    ratio: float | None = None,
    count: int | None = None,
) -> Tensor:
    """Like :func:`smallest_units`, but the same number from each of ``groups`` blocks.

    The units are split into ``groups`` equal contiguous blocks (for an LSTM
    the four gates: unit ``k * G + g`` is hidden neuron ``g`` of gate ``k``),
    and ``count`` units, or ``count_for_ratio(ratio, n)`` with ``n`` the
    fewest active units of any block, are removed from EVERY block. Gates
    that start equally wide therefore stay equally wide, which the fused
    four-gate matrix multiply needs. Returns global indices, ascending.
    """
    _check_units(scores, active)
    if groups < 1 or scores.numel() % groups:
        raise ValueError(f"{scores.numel()} units do not split into {groups} equal groups")
    active = active.to(torch.bool)
    size = scores.numel() // groups
    blocks_active = active.reshape(groups, size)
    n_min = int(blocks_active.sum(dim=1).min().item())
    k = _unit_count(n_min, ratio, count)
    picks = [
        select_extreme(scores[g * size : (g + 1) * size], blocks_active[g], k, largest=False) + g * size
        for g in range(groups)
    ]
    return torch.sort(torch.cat(picks)).values
