"""The exported language model: an inference-only H-LSTM LM in its fastest form.

Training keeps masks beside dense weights; deployment does not need them. :func:`export`
thins the flow's final model first (so every matrix is physically as small as its active units
allow), then each of the three products of every layer runs in the format the hardware profile
says is fastest at its sparsity (:func:`symbiotic.runtime.formats.choose_formats`):

- ``"dense"``: the weight pre-multiplied by its mask, run by a dense GEMM;
- ``"csr"``: the non-zeros only, run by a sparse-dense product (MKL on CPU, cuSPARSE on GPU),
  which beats dense for the per-step recurrent products on this kind of CPU from about 80-90%
  sparsity.

``u_x`` and ``u_h`` run through the same ``torch.addmm`` call whichever their format (addmm
dispatches on the weight's layout, and it fuses the bias/pre-activation add that a separate
``torch.sparse.mm`` would need), so only ``w`` needs two code paths: a CSR ``w`` is ONE
block-diagonal (4H, 4G) matrix that computes all four gates in one call; a dense ``w`` stays
(4, H, G) and runs as one batched product (a dense block diagonal would do four times the work).

Both forward passes start from zero state (one test sequence at a time), and everything runs
without autograd. :func:`to_state` / :func:`from_state` (de)serialise it.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.models.hlstm import GATES, HLSTMLayer
from symbiotic.models.lm import HLSTMLanguageModel
from symbiotic.runtime import native
from symbiotic.runtime.formats import check_formats
from symbiotic.runtime.layers import InferenceLayer, decode, format_of, layer_widths, scripted
from symbiotic.runtime.packing import block_diag, deployable, packed, to_csr
from symbiotic.runtime.serialise import (
    check_header,
    layer_state,
    plain,
    read_count,
    read_dense,
    read_field,
    read_decoder,
    read_layer,
    state_error,
)
from symbiotic.sparsity.masks import effective

__all__ = ["InferenceHLSTMLayer", "InferenceLM", "export", "to_state", "from_state", "latency_inputs"]

STATE_KIND = "symbiotic.inference_lm"
STATE_VERSION = 1


def _recurrence(pre: Tensor, h: Tensor, c: Tensor, u_h: Tensor, w: Tensor, w_b: Tensor, w_csr: bool) -> Tensor:
    """The per-step loop in transposed layout: outputs (T, H, B).

    pre (T, 4G, B) is U_x x_t + u_b for every step (any strides); h, c (H, B);
    u_h (4G, H) dense or CSR; w (4H, 4G) block-diagonal CSR with w_b (4H, 1) if
    ``w_csr``, else dense (4, H, G) with w_b (4, H, 1). Gate rows are f, i, o, g.
    """
    H = h.shape[0]
    B = h.shape[1]
    G = pre.shape[1] // 4
    outs = []
    for t in range(pre.shape[0]):
        z = torch.addmm(pre[t], u_h, h).relu_()  # (4G, B)
        if w_csr:
            gates = torch.addmm(w_b, w, z)  # (4H, B)
        else:
            gates = torch.baddbmm(w_b, w, z.view(4, G, B)).view(4 * H, B)
        s = gates[: 3 * H].sigmoid()  # f, i, o in one call
        c = torch.addcmul(s[:H] * c, s[H : 2 * H], gates[3 * H :].tanh())
        h = s[2 * H :] * c.tanh()
        outs.append(h)
    return torch.stack(outs)


# TorchScript: torch.jit.script(_recurrence) works on torch 2.14.1, CSR weights
# included, but only pays off for the dense recurrent path. Side by side on the
# PTB inference shape (H = G = 256, I = 128, B = 16, T = 70, 90% sparsity; ratio
# of medians via measure(), interleaved rounds) the scripted loop was 1.05-1.20x
# faster with dense u_h/w on CPU (1.17x on CUDA), but within noise (0.97-1.04x)
# with CSR on CPU and 0.9x on CUDA. So the scripted loop runs when u_h and w are
# both dense, the plain one otherwise.


class InferenceHLSTMLayer(InferenceLayer):
    """One trained :class:`HLSTMLayer`, inference only; outputs equal ``layer.eval()``'s for
    zero initial state. u_x (4G, I) and u_h (4G, H) dense or CSR; w (4, H, G) dense or
    (4H, 4G) block-diagonal CSR."""

    @staticmethod
    def layout(D: int, I: int, H: int, G: int) -> dict[str, tuple[tuple, tuple]]:
        """(dense shape, CSR shape) of each matrix; D is always 1 here."""
        return {"u_x": ((GATES * G, I), (GATES * G, I)), "u_h": ((GATES * G, H), (GATES * G, H)),
                "w": ((GATES, H, G), (GATES * H, GATES * G))}

    @classmethod
    @torch.no_grad()
    def from_trained(cls, layer: HLSTMLayer, formats: Mapping[str, str]) -> InferenceHLSTMLayer:
        """``layer``'s effective weights (mask applied), packed in ``formats``."""
        formats = check_formats(formats)
        u_x, u_h, w = (effective(layer, name).detach().clone() for name in ("u_x", "u_h", "w"))
        weights = {
            "u_x": to_csr(u_x) if formats["u_x"] == "csr" else u_x,
            "u_h": to_csr(u_h) if formats["u_h"] == "csr" else u_h,
            "w": to_csr(block_diag(w)) if formats["w"] == "csr" else w,
        }
        return cls(formats, weights, layer.u_b.detach().clone(), layer.w_b.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        """x (T, B, I) -> out (T, B, H) from zero state, contiguous.

        The loop runs on (H, B) states; the native one writes its outputs as (T, B, H) itself,
        the torch one makes one copy at the end: the next layer and the decoder take a
        contiguous (T, B, H), as a GEMM on the transposed view is ~1.5x slower than the copy
        plus a GEMM on contiguous memory (measured on this CPU).
        """
        T, B, _ = x.shape
        H = self.hidden_size
        if T == 0:
            return x.new_zeros(0, B, H)
        if native.runs(x):
            return self.native(x)
        w_csr = self.is_csr("w")
        loop = _recurrence if w_csr or self.is_csr("u_h") else scripted(_recurrence)
        h = x.new_zeros(H, B)
        out = loop(self.input_half(x), h, h.clone(), self.u_h, self.w, self.loop_bias(), w_csr)  # (T, H, B)
        return out.transpose(1, 2).contiguous()


class InferenceLM(nn.Module):
    """Embedding -> inference H-LSTM layers -> decoder (dense or CSR); always in eval mode."""

    def __init__(self, embedding: Tensor, layers: list[InferenceHLSTMLayer], decoder_w: Tensor, decoder_b: Tensor):
        super().__init__()
        self.register_buffer("embedding", embedding)  # (V, E)
        self.layers = nn.ModuleList(layers)
        self.register_buffer("decoder_w", decoder_w)  # (V, H_last) dense or CSR, mask already applied
        self.register_buffer("decoder_b", decoder_b)  # (V,)
        self.eval()

    @property
    def vocab(self) -> int:
        return self.embedding.shape[0]

    @property
    def dims(self) -> dict:
        """Physical sizes: vocab, embed, and per-layer hidden and gate_hidden."""
        return {
            "vocab": self.vocab,
            "embed": self.embedding.shape[1],
            "hidden": [layer.hidden_size for layer in self.layers],
            "gate_hidden": [layer.gate_hidden for layer in self.layers],
        }

    def widths(self) -> dict[str, int]:
        """Physical width per unit key, as :meth:`HLSTMLanguageModel.widths` names them."""
        return {"embed": self.embedding.shape[1], **layer_widths(self.layers)}

    @property
    def formats(self) -> list[dict[str, str]]:
        """The format of every product, one dict per layer."""
        return [dict(layer.formats) for layer in self.layers]

    @property
    def decoder_format(self) -> str:
        return format_of(self.decoder_w)

    @torch.no_grad()
    def recurrent(self, tokens: Tensor) -> Tensor:
        """tokens (T, B) long -> last layer's outputs (T, B, H): everything but the decoder."""
        x = F.embedding(tokens, self.embedding)
        for layer in self.layers:
            x = layer(x)
        return x

    @torch.no_grad()
    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (T, B) long -> logits (T, B, V), from zero state."""
        return decode(self.recurrent(tokens), self.decoder_w, self.decoder_b)


def export(model: HLSTMLanguageModel, formats: Mapping[str, str], thinned: bool = True,
           decoder: str = "dense") -> InferenceLM:
    """``model``'s inference form, thinned first (``thinned=False``: at its own widths, see
    :func:`symbiotic.runtime.packing.deployable`); ``formats`` (one of "dense"/"csr" per
    product, e.g. from ``choose_formats``) applies to every layer, ``decoder`` to the decoder."""
    formats = check_formats(formats)
    model = deployable(model, thinned)
    return InferenceLM(
        model.embedding.weight.detach().clone(),
        [InferenceHLSTMLayer.from_trained(layer, formats) for layer in model.layers],
        packed(effective(model, "decoder_w").detach().clone(), decoder),
        model.decoder_b.detach().clone(),
    )


def to_state(m: InferenceLM) -> dict:
    """Everything :func:`from_state` needs, as plain tensors and containers (CPU)."""
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "dims": m.dims,
        "embedding": plain(m.embedding),
        "decoder_format": m.decoder_format,
        "decoder_w": plain(m.decoder_w),
        "decoder_b": plain(m.decoder_b),
        "layers": [layer_state(layer) for layer in m.layers],
    }


def from_state(state: Mapping) -> InferenceLM:
    """The :class:`InferenceLM` of a :func:`to_state` dict; UserError naming the bad key."""
    check_header(state, STATE_KIND, STATE_VERSION)
    dims = read_field(state, "dims", "dims", Mapping)
    V = read_count(dims, "dims.vocab", "vocab", 1)
    E = read_count(dims, "dims.embed", "embed")
    hidden = read_field(dims, "dims.hidden", "hidden", list)
    gate_hidden = read_field(dims, "dims.gate_hidden", "gate_hidden", list)
    raw_layers = read_field(state, "layers", "layers", list)
    if not hidden or len(hidden) != len(gate_hidden) or len(hidden) != len(raw_layers):
        raise state_error("layers", f"has {len(raw_layers)} entries for dims.hidden {hidden}, "
                                    f"dims.gate_hidden {gate_hidden}")
    embedding = read_dense(state, "embedding", "embedding", (V, E))
    dtype = embedding.dtype
    layers, I = [], E
    for l, raw in enumerate(raw_layers):
        H, G = hidden[l], gate_hidden[l]
        for what, n in ((f"dims.hidden.{l}", H), (f"dims.gate_hidden.{l}", G)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise state_error(what, f"is {n!r}, expected an integer >= 0")
        layers.append(read_layer(raw, f"layers.{l}", InferenceHLSTMLayer, (1, I, H, G), dtype))
        I = H
    decoder_w = read_decoder(state, (V, I), dtype)
    decoder_b = read_dense(state, "decoder_b", "decoder_b", (V,), dtype)
    return InferenceLM(embedding, layers, decoder_w, decoder_b)


def latency_inputs(vocab: int, batch: int = 16, seq_len: int = 70, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> Tensor:
    """Random tokens (seq_len, batch) in [0, vocab) for timing inference (values do not matter for latency)."""
    tokens = torch.randint(0, vocab, (seq_len, batch), generator=generator)
    return tokens if device is None else tokens.to(device)
