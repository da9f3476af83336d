"""The exported model: an inference-only H-LSTM language model in its fastest form.

Training keeps masks beside dense weights; deployment does not need them. The
flow's final model is exported by :func:`export`: it is thinned first (so every
matrix is physically as small as its active units allow), then each of the
three products of every layer runs in the format the hardware profile says is
fastest at its sparsity (:func:`choose_formats`):

- ``"dense"``: the weight pre-multiplied by its mask, run by a dense GEMM;
- ``"csr"``: the non-zeros only, run by a sparse-dense product (MKL on CPU,
  cuSPARSE on GPU), which beats dense for the per-step recurrent products on
  this kind of CPU from about 80-90% sparsity.

Every product is ``W @ X^T`` on transposed activations, the layout a CSR kernel
wants, and the recurrent state stays transposed ((H, B)) through the whole
loop, so no step transposes or copies anything. ``u_x`` and ``u_h`` run through
the same ``torch.addmm`` call whichever their format (addmm dispatches on the
weight's layout, and it fuses the bias/pre-activation add that a separate
``torch.sparse.mm`` would need), so only ``w`` needs two code paths: a CSR ``w``
is ONE block-diagonal (4H, 4G) matrix that computes all four gates in one call;
a dense ``w`` stays (4, H, G) and runs as one batched product (a dense block
diagonal would do four times the work).

Both forward passes start from zero state (one test sequence at a time), and
everything runs without autograd.

:func:`inference_state` / :func:`load_inference` (de)serialise to plain tensors
and containers that ``torch.load(..., weights_only=True)`` accepts.
"""

from __future__ import annotations

import copy

import warnings
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.errors import UserError
from symbiotic.models.hlstm import GATES, HLSTMLayer
from symbiotic.models.lm import HLSTMLanguageModel
from symbiotic.sparsity.masks import effective
from symbiotic.sparsity.thinning import thin

__all__ = [
    "MATRICES",
    "FORMATS",
    "InferenceHLSTMLayer",
    "InferenceLM",
    "export",
    "choose_formats",
    "matrix_sparsity",
    "inference_state",
    "load_inference",
    "latency_inputs",
]

MATRICES = ("u_x", "u_h", "w")  # the masked products of a layer, as the profile names them
FORMATS = ("dense", "csr")
STATE_KIND = "symbiotic.inference_lm"
STATE_VERSION = 1
CSR_PARTS = ("crow_indices", "col_indices", "values", "shape")


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
# both dense, the plain one otherwise. It is scripted on first use (scripting
# costs time and warns that TorchScript is deprecated), and a torch that cannot
# script it silently gets the plain loop.
_scripted: Callable | None = None


def _dense_loop() -> Callable:
    global _scripted
    if _scripted is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _scripted = torch.jit.script(_recurrence)
        except Exception:  # TorchScript missing or unable: same numbers, slower
            _scripted = _recurrence
    return _scripted


def _to_csr(t: Tensor) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return t.to_sparse_csr()


def _check_formats(formats: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(formats, Mapping) or set(formats) != set(MATRICES):
        got = sorted(formats) if isinstance(formats, Mapping) else type(formats).__name__
        raise UserError(
            f"formats must name exactly {list(MATRICES)}, got {got}",
            f"give one of {list(FORMATS)} for each of {list(MATRICES)}",
        )
    for name in MATRICES:
        if formats[name] not in FORMATS:
            raise UserError(
                f"format {formats[name]!r} for {name} is unknown",
                f"use one of {list(FORMATS)} for {name}",
            )
    return {name: formats[name] for name in MATRICES}


def _block_diag(w: Tensor) -> Tensor:
    """(4, H, G) -> (4H, 4G) with W_k on the diagonal."""
    return torch.block_diag(*w.unbind(0))


class InferenceHLSTMLayer(nn.Module):
    """An inference-only H-LSTM layer (no dropout, no masks) from a trained :class:`HLSTMLayer`.

    ``formats`` maps each of ``"u_x"``, ``"u_h"``, ``"w"`` to ``"dense"`` or
    ``"csr"``. Outputs equal ``layer.eval()``'s for zero initial state.
    Weights are buffers, so ``.to(device)`` moves them, CSR ones included.
    """

    def __init__(self, layer: HLSTMLayer, formats: Mapping[str, str]):
        super().__init__()
        formats = _check_formats(formats)
        with torch.no_grad():
            dense = {name: effective(layer, name).detach().clone() for name in MATRICES}
            u_b, w_b = layer.u_b.detach().clone(), layer.w_b.detach().clone()
        weights = {
            "u_x": _to_csr(dense["u_x"]) if formats["u_x"] == "csr" else dense["u_x"],
            "u_h": _to_csr(dense["u_h"]) if formats["u_h"] == "csr" else dense["u_h"],
            "w": _to_csr(_block_diag(dense["w"])) if formats["w"] == "csr" else dense["w"],
        }
        self._setup(formats, weights, u_b, w_b)

    @classmethod
    def from_parts(cls, formats: Mapping[str, str], weights: Mapping[str, Tensor], u_b: Tensor, w_b: Tensor):
        """A layer from weights already in their format (w: (4, H, G) dense or (4H, 4G) CSR)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._setup(_check_formats(formats), dict(weights), u_b, w_b)
        return layer

    def _setup(self, formats: dict[str, str], weights: dict[str, Tensor], u_b: Tensor, w_b: Tensor) -> None:
        self.formats = formats
        for name in MATRICES:
            self.register_buffer(name, weights[name])
        self.register_buffer("u_b", u_b)  # (4G,)
        self.register_buffer("w_b", w_b)  # (4, H)
        self.eval()

    @property
    def input_size(self) -> int:
        return self.u_x.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_b.shape[1]

    @property
    def gate_hidden(self) -> int:
        return self.u_b.shape[0] // GATES

    def forward(self, x: Tensor) -> Tensor:
        """x (T, B, I) -> out (T, B, H) from zero state, contiguous.

        The loop produces (T, H, B); one copy at the end gives the next layer and
        the decoder a contiguous (T, B, H): a GEMM on the transposed view is ~1.5x
        slower than the copy plus a GEMM on contiguous memory (measured on this CPU).
        """
        T, B, I = x.shape
        H, G = self.hidden_size, self.gate_hidden
        if T == 0:
            return x.new_zeros(0, B, H)
        # The input half does not depend on h: one product for all steps, already
        # in the (4G, B)-per-step layout the loop reads (column t*B + b).
        pre = torch.addmm(self.u_b.unsqueeze(1), self.u_x, x.reshape(T * B, I).t())  # (4G, T*B)
        pre = pre.view(GATES * G, T, B).transpose(0, 1)  # (T, 4G, B), a view
        w_csr = self.formats["w"] == "csr"
        w_b = self.w_b.reshape(GATES * H, 1) if w_csr else self.w_b.unsqueeze(2)
        loop = _recurrence if w_csr or self.formats["u_h"] == "csr" else _dense_loop()
        h = x.new_zeros(H, B)
        out = loop(pre, h, h.clone(), self.u_h, self.w, w_b, w_csr)  # (T, H, B)
        return out.transpose(1, 2).contiguous()

    def extra_repr(self) -> str:
        fmt = ", ".join(f"{k}={v}" for k, v in self.formats.items())
        return f"{self.input_size}, {self.hidden_size}, gate_hidden={self.gate_hidden}, {fmt}"


class InferenceLM(nn.Module):
    """Embedding -> inference H-LSTM layers -> dense decoder; always in eval mode."""

    def __init__(self, embedding: Tensor, layers: list[InferenceHLSTMLayer], decoder_w: Tensor, decoder_b: Tensor):
        super().__init__()
        self.register_buffer("embedding", embedding)  # (V, E)
        self.layers = nn.ModuleList(layers)
        self.register_buffer("decoder_w", decoder_w)  # (V, H_last), mask already applied
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

    @property
    def formats(self) -> list[dict[str, str]]:
        """The format of every product, one dict per layer."""
        return [dict(layer.formats) for layer in self.layers]

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
        return F.linear(self.recurrent(tokens), self.decoder_w, self.decoder_b)


# ---- export ---------------------------------------------------------------------------------

def _thin(model: nn.Module) -> nn.Module:
    return thin(model).eval()


@torch.no_grad()
def _from_thin(model: HLSTMLanguageModel, formats: Mapping[str, str]) -> InferenceLM:
    layers = [InferenceHLSTMLayer(layer, formats) for layer in model.layers]
    return InferenceLM(
        model.embedding.weight.detach().clone(),
        layers,
        effective(model, "decoder_w").detach().clone(),
        model.decoder_b.detach().clone(),
    )


def export(model: HLSTMLanguageModel, formats: Mapping[str, str], thinned: bool = True) -> InferenceLM:
    """Thin ``model`` (physically minimal sizes; ``thinned=False``: keep its widths, inactive
    units as zero rows), then build its inference form.

    ``formats`` (one of "dense"/"csr" per product, e.g. from
    :func:`choose_formats`) applies to every layer.
    """
    formats = _check_formats(formats)
    return _from_thin(_thin(model) if thinned else copy.deepcopy(model).eval(), formats)


@torch.no_grad()
def matrix_sparsity(model: nn.Module) -> dict[str, float]:
    """1 - mask mean per product over all H-LSTM layers (and directions) of ``model`` as it is.

    ``w`` counts only its four (H, G) blocks, the block diagonal that CSR stores.
    """
    out = {}
    for name in MATRICES:
        masks = [getattr(layer, f"mask_{name}") for layer in model.modules() if isinstance(layer, HLSTMLayer)]
        total = sum(m.numel() for m in masks)
        active = sum(int(m.count_nonzero()) for m in masks)
        out[name] = 1.0 - active / total if total else 0.0
    return out


def choose_formats(model: nn.Module, crossover: Mapping[str, float | None]) -> dict[str, str]:
    """"csr" for each product whose sparsity (on the thinned model) is at or above
    the profile's crossover for it, else "dense"; a crossover of None means dense
    always wins."""
    missing = [name for name in MATRICES if name not in crossover]
    if missing:
        raise UserError(
            f"the sparse crossover has no entry for {missing}",
            "re-run the profile stage so it measures every product (u_x, u_h, w)",
        )
    sparsity = matrix_sparsity(_thin(model))
    formats = {}
    for name in MATRICES:
        point = crossover[name]
        formats[name] = "csr" if point is not None and sparsity[name] >= point else "dense"
    return formats


# ---- serialisation ----------------------------------------------------------------------------

def _plain(t: Tensor):
    """A dense tensor as is; a CSR one as its parts (tensors and a list of ints)."""
    t = t.detach().cpu()
    if t.layout == torch.sparse_csr:
        return {
            "crow_indices": t.crow_indices().clone(),
            "col_indices": t.col_indices().clone(),
            "values": t.values().clone(),
            "shape": list(t.shape),
        }
    return t.clone()


def inference_state(m: InferenceLM) -> dict:
    """Everything :func:`load_inference` needs, as plain tensors and containers (CPU).

    Loadable with ``torch.load(..., weights_only=True)``. A CSR matrix is stored
    as ``{"crow_indices", "col_indices", "values", "shape"}``.
    """
    layers = []
    for layer in m.layers:
        entry = {"formats": dict(layer.formats)}
        for name in (*MATRICES, "u_b", "w_b"):
            entry[name] = _plain(getattr(layer, name))
        layers.append(entry)
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "dims": m.dims,
        "embedding": _plain(m.embedding),
        "decoder_w": _plain(m.decoder_w),
        "decoder_b": _plain(m.decoder_b),
        "layers": layers,
    }


def _bad(key: str, problem: str) -> UserError:
    return UserError(
        f"inference state {key} {problem}",
        "load a file written by inference_state for this model (re-run the export stage)",
    )


def _get(d, key: str, name: str, kind):
    if not isinstance(d, Mapping) or name not in d:
        raise _bad(key, "is missing")
    value = d[name]
    if not isinstance(value, kind):
        raise _bad(key, f"is a {type(value).__name__}, expected {getattr(kind, '__name__', kind)}")
    return value


def _dense(d, key: str, name: str, shape: tuple[int, ...], dtype=None) -> Tensor:
    t = _get(d, key, name, Tensor)
    if t.layout != torch.strided or tuple(t.shape) != shape:
        raise _bad(key, f"has shape {tuple(t.shape)} ({t.layout}), expected dense {shape}")
    if not t.is_floating_point() or (dtype is not None and t.dtype != dtype):
        raise _bad(key, f"has dtype {t.dtype}, expected {dtype or 'a floating type'}")
    return t


def _csr(d, key: str, name: str, shape: tuple[int, ...], dtype) -> Tensor:
    parts = _get(d, key, name, Mapping)
    for part in CSR_PARTS:
        _get(parts, f"{key}.{part}", part, list if part == "shape" else Tensor)
    if [int(n) for n in parts["shape"]] != list(shape):
        raise _bad(f"{key}.shape", f"is {list(parts['shape'])}, expected {list(shape)}")
    values = parts["values"]
    if values.dtype != dtype or values.dim() != 1:
        raise _bad(f"{key}.values", f"is {values.dtype} of shape {tuple(values.shape)}, expected 1-d {dtype}")
    for part in ("crow_indices", "col_indices"):
        t = parts[part]
        if t.dtype not in (torch.int32, torch.int64) or t.dim() != 1:
            raise _bad(f"{key}.{part}", f"is {t.dtype} of shape {tuple(t.shape)}, expected a 1-d integer tensor")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                parts["crow_indices"], parts["col_indices"], values, shape, check_invariants=True
            )
    except (RuntimeError, ValueError) as e:
        raise _bad(key, f"is not a valid CSR matrix of shape {shape} ({e})") from None


def _matrix(d, key: str, name: str, fmt: str, dense_shape, csr_shape, dtype) -> Tensor:
    if fmt == "csr":
        return _csr(d, f"{key}.{name}", name, csr_shape, dtype)
    return _dense(d, f"{key}.{name}", name, dense_shape, dtype)


def _dim(d: dict, key: str, name: str, lo: int = 0) -> int:
    n = _get(d, key, name, int)
    if isinstance(n, bool) or n < lo:
        raise _bad(key, f"is {n!r}, expected an integer >= {lo}")
    return n


def load_inference(state: Mapping) -> InferenceLM:
    """The :class:`InferenceLM` of an :func:`inference_state` dict; UserError naming the bad key."""
    if not isinstance(state, Mapping) or state.get("kind") != STATE_KIND:
        raise _bad("kind", f"is {state.get('kind') if isinstance(state, Mapping) else state!r}, "
                           f"expected {STATE_KIND!r}")
    if state.get("version") != STATE_VERSION:
        raise _bad("version", f"is {state.get('version')!r}, this code reads {STATE_VERSION}")
    dims = _get(state, "dims", "dims", Mapping)
    V = _dim(dims, "dims.vocab", "vocab", 1)
    E = _dim(dims, "dims.embed", "embed")
    hidden = _get(dims, "dims.hidden", "hidden", list)
    gate_hidden = _get(dims, "dims.gate_hidden", "gate_hidden", list)
    raw_layers = _get(state, "layers", "layers", list)
    if not hidden or len(hidden) != len(gate_hidden) or len(hidden) != len(raw_layers):
        raise _bad("layers", f"has {len(raw_layers)} entries for dims.hidden {hidden}, "
                             f"dims.gate_hidden {gate_hidden}")
    embedding = _dense(state, "embedding", "embedding", (V, E))
    dtype = embedding.dtype
    layers, I = [], E
    for l, raw in enumerate(raw_layers):
        key = f"layers.{l}"
        H, G = hidden[l], gate_hidden[l]
        for what, n in ((f"dims.hidden.{l}", H), (f"dims.gate_hidden.{l}", G)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise _bad(what, f"is {n!r}, expected an integer >= 0")
        fmt_raw = _get(raw, f"{key}.formats", "formats", Mapping)
        try:
            formats = _check_formats(fmt_raw)
        except UserError as e:
            raise _bad(f"{key}.formats", e.problem) from None
        weights = {
            "u_x": _matrix(raw, key, "u_x", formats["u_x"], (GATES * G, I), (GATES * G, I), dtype),
            "u_h": _matrix(raw, key, "u_h", formats["u_h"], (GATES * G, H), (GATES * G, H), dtype),
            "w": _matrix(raw, key, "w", formats["w"], (GATES, H, G), (GATES * H, GATES * G), dtype),
        }
        if formats["w"] == "csr":
            _check_block_diagonal(weights["w"], H, G, f"{key}.w")
        u_b = _dense(raw, f"{key}.u_b", "u_b", (GATES * G,), dtype)
        w_b = _dense(raw, f"{key}.w_b", "w_b", (GATES, H), dtype)
        layers.append(InferenceHLSTMLayer.from_parts(formats, weights, u_b, w_b))
        I = H
    decoder_w = _dense(state, "decoder_w", "decoder_w", (V, I), dtype)
    decoder_b = _dense(state, "decoder_b", "decoder_b", (V,), dtype)
    return InferenceLM(embedding, layers, decoder_w, decoder_b)


def _check_block_diagonal(w: Tensor, H: int, G: int, key: str) -> None:
    """Every stored entry of a CSR w must lie in its row's gate block (W_k on the diagonal)."""
    rows = torch.repeat_interleave(torch.arange(GATES * H), w.crow_indices().diff().long())
    cols = w.col_indices().long()
    if H and G and not torch.equal(rows // H, cols // G):
        raise _bad(key, "has entries off the four diagonal (H, G) gate blocks")


def latency_inputs(vocab: int, batch: int = 16, seq_len: int = 70, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> Tensor:
    """Random tokens (seq_len, batch) in [0, vocab) for timing inference (values do not matter for latency)."""
    tokens = torch.randint(0, vocab, (seq_len, batch), generator=generator)
    return tokens if device is None else tokens.to(device)
