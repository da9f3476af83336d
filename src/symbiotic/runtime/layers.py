"""What every exported H-LSTM layer keeps and does, whatever the model around it.

A layer holds D stacked directions (D = 1 for the language model's layers, 2 for a
bidirectional speech layer). Every product is ``W @ X^T`` on transposed activations, the
layout a CSR kernel wants, so the recurrent state stays (H, B) through the whole time loop.
Each model module packs its own layer (``from_trained``) and runs its own loop (``forward``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.models.hlstm import GATES
from symbiotic.runtime import native
from symbiotic.runtime.formats import MATRICES, check_formats

__all__ = ["InferenceLayer", "decode", "format_of", "scripted", "layer_widths"]


class InferenceLayer(nn.Module):
    """An inference-only H-LSTM layer (no dropout, no masks): u_x, u_h, w in their formats
    and the biases u_b (D*4G,) and w_b (D*4, H), all buffers so that ``.to(device)`` moves
    CSR ones too; always in eval mode. Weights are given already packed."""

    def __init__(self, formats: Mapping[str, str], weights: Mapping[str, Tensor], u_b: Tensor, w_b: Tensor):
        super().__init__()
        self.formats = check_formats(formats)
        for name in MATRICES:
            self.register_buffer(name, weights[name])
        self.register_buffer("u_b", u_b)  # (D*4G,)
        self.register_buffer("w_b", w_b)  # (D*4, H)
        self.eval()

    @property
    def directions(self) -> int:
        return self.w_b.shape[0] // GATES

    @property
    def input_size(self) -> int:
        return self.u_x.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_b.shape[1]

    @property
    def gate_hidden(self) -> int:
        return self.u_b.shape[0] // (GATES * self.directions)

    def is_csr(self, name: str) -> bool:
        return self.formats[name] == "csr"

    def input_half(self, x: Tensor) -> Tensor:
        """x (T, B, I) -> U_x x_t + u_b for every step, (T, D*4G, B), a view.

        The input half does not depend on h: one product for all steps and directions,
        already in the (D*4G, B)-per-step layout the loop reads (column t*B + b).
        """
        T, B, _ = x.shape
        return self.input_rows(x).view(-1, T, B).transpose(0, 1)

    def input_rows(self, x: Tensor) -> Tensor:
        """x (T, B, I) -> U_x x_t + u_b as (D*4G, T*B), column t*B + b."""
        T, B, I = x.shape
        return torch.addmm(self.u_b.unsqueeze(1), self.u_x, x.reshape(T * B, I).t())

    def native(self, x: Tensor, order: Tensor | None = None) -> Tensor:
        """The whole layer in the compiled runtime: x (T, B, I) -> (T, B, H), the directions
        summed (``order``: see :func:`symbiotic.runtime.native.hlstm_layer`)."""
        return native.hlstm_layer(x, self.u_x, self.u_b, self.u_h, self.w, self.w_b, order)

    def loop_bias(self) -> Tensor:
        """w_b as the loop's w product adds it: (D*4H, 1) beside a CSR w, (D*4, H, 1) beside a dense one."""
        return self.w_b.reshape(-1, 1) if self.is_csr("w") else self.w_b.unsqueeze(2)

    def extra_repr(self) -> str:
        fmt = ", ".join(f"{k}={v}" for k, v in self.formats.items())
        return f"{self.input_size}, {self.hidden_size}, gate_hidden={self.gate_hidden}, {fmt}"


def decode(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The output product: x (T, B, H) -> (T, B, V) = x W^T + b, W (V, H) dense or CSR.

    CSR runs as W @ x^T on a contiguous (H, T*B) copy of x (the small side; a CSR product on a
    transposed view is several times slower), and the (V, T*B) result is returned as a
    transposed VIEW: copying the vocabulary-sized output back cost more than the sparse
    product saved (measured on this CPU at V = 10,000, H = 256, T*B = 1120). The product is
    the native runtime's (:func:`symbiotic.runtime.native.csr_mm`) where it runs: MKL's, through
    torch.addmm, did a fifth of the dense GEMM's multiply-adds per second (README, "The decoder").
    """
    if w.layout != torch.sparse_csr:
        return F.linear(x, w, b)
    T, B, H = x.shape
    xt = x.permute(2, 0, 1).reshape(H, T * B)
    out = native.csr_mm(w, xt, b) if native.runs(x) and w.crow_indices().dtype == torch.int32 \
        else torch.addmm(b.unsqueeze(1), w, xt)  # (V, T*B)
    return out.t().view(T, B, -1)


def format_of(t: Tensor) -> str:
    return "csr" if t.layout == torch.sparse_csr else "dense"


@functools.cache
def scripted(loop: Callable) -> Callable:
    """``loop`` compiled by TorchScript, once, on first use (scripting costs time, and warns that
    TorchScript is deprecated); ``loop`` itself where this torch cannot script it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(loop)
    except Exception:  # TorchScript missing or unable: same numbers, slower
        return loop


def layer_widths(layers) -> dict[str, int]:
    """Width per unit key of exported layers (gate keys: neurons per gate), as a training model's ``widths()``."""
    return {**{f"gate.{l}": layer.gate_hidden for l, layer in enumerate(layers)},
            **{f"hidden.{l}": layer.hidden_size for l, layer in enumerate(layers)}}
