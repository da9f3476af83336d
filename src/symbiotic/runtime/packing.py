"""From a trained masked model to the weights an export keeps, in the layouts it runs them in.

Layouts are decided here, once, at export time: a CSR kernel never re-packs per call.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from symbiotic.errors import UserError
from symbiotic.sparsity.thinning import thin

__all__ = ["deployable", "to_csr", "int32_csr", "packed", "block_diag"]


def deployable(model: nn.Module, thinned: bool = True) -> nn.Module:
    """The copy of ``model`` an export reads, in eval mode: thinned (every matrix physically as
    small as its active units allow) or, with ``thinned=False``, at its own widths (inactive
    units stay as zero rows). ``model`` itself is left as it is."""
    return thin(model).eval() if thinned else copy.deepcopy(model).eval()


def to_csr(t: Tensor) -> Tensor:
    """``t`` in CSR layout with int32 indices, quietly (torch warns that sparse CSR support is
    in beta). int32 is what the native kernel reads (int64 would be converted on every call)
    and what MKL's sparse BLAS takes; torch's own CSR products accept either."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return int32_csr(t.to_sparse_csr())


def int32_csr(t: Tensor) -> Tensor:
    """CSR ``t`` with int32 indices (itself if it has them already)."""
    if t.crow_indices().dtype == torch.int32:
        return t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(t.crow_indices().to(torch.int32), t.col_indices().to(torch.int32),
                                       t.values(), t.shape)


def packed(t: Tensor, fmt: str) -> Tensor:
    """``t`` in format ``fmt`` ("dense": as is, "csr": :func:`to_csr`)."""
    if fmt not in ("dense", "csr"):
        raise UserError(f"format {fmt!r} is unknown", "use 'dense' or 'csr'")
    return to_csr(t) if fmt == "csr" else t


def block_diag(w: Tensor) -> Tensor:
    """(N, H, G) -> (N*H, N*G) with the N blocks on the diagonal: one CSR product for all of them."""
    return torch.block_diag(*w.unbind(0))
