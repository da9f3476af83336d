"""From a trained masked model to the weights an export keeps, in the layouts it runs them in.

Layouts are decided here, once, at export time: a CSR kernel never re-packs per call.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from symbiotic.sparsity.thinning import thin

__all__ = ["deployable", "to_csr", "block_diag"]


def deployable(model: nn.Module, thinned: bool = True) -> nn.Module:
    """The copy of ``model`` an export reads, in eval mode: thinned (every matrix physically as
    small as its active units allow) or, with ``thinned=False``, at its own widths (inactive
    units stay as zero rows). ``model`` itself is left as it is."""
    return thin(model).eval() if thinned else copy.deepcopy(model).eval()


def to_csr(t: Tensor) -> Tensor:
    """``t`` in CSR layout, quietly (torch warns that sparse CSR support is in beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return t.to_sparse_csr()


def block_diag(w: Tensor) -> Tensor:
    """(N, H, G) -> (N*H, N*G) with the N blocks on the diagonal: one CSR product for all of them."""
    return torch.block_diag(*w.unbind(0))
