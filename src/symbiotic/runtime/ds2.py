"""The exported acoustic model: an inference-only DeepSpeech2 (H-LSTM) in its fastest form.

:func:`export` thins a trained masked :class:`DeepSpeech2` (so every matrix is physically as
small as its active units allow) and builds an :class:`InferenceDS2` whose outputs equal
``model.eval()``'s:

- front-end: each Conv2d + BatchNorm2d pair is folded into one conv with a
  bias (eval BatchNorm is a per-channel affine map, so it commutes into the
  weights), then Hardtanh(0, 20); frames past each length are zeroed after each
  block exactly as :meth:`DeepSpeech2._convolve` does;
- recurrent layers: BOTH directions of a layer run in ONE time loop (half the
  per-step calls, which set the time at these widths), in the
  direction-major layout below; BatchNorm1d between layers is its eval affine
  map (scale, shift); padding is zeroed after every layer;
- the decoder (dense or CSR, ``layers.decode``), then log_softmax.

Direction-major layout of a layer with D directions (1 or 2; d = 0 forward,
1 backward), per-direction widths H (hidden) and G (gate hidden); rows of each
direction keep the training layout (gate-major ``k*G + g``, gates f, i, o, g)::

    u_x  (D*4G, I)      dense or CSR   row d*4G + k*G + g; one product for both directions
    u_b  (D*4G,)
    u_h  (D, 4G, H)     dense, batched product over d
         (D*4G, D*H)    CSR, direction-block-diagonal: one sparse product
    w    (D*4, H, G)    dense, batched product over (d, k)
         (D*4H, D*4G)   CSR, block-diagonal of the D*4 (H, G) blocks W_{d,k}
    w_b  (D*4, H)
    state h, c (D, H, B), pre-activations (T, D*4G, B)

Dense and CSR products give the SAME row layout ((D*4G, B) after u_h, (D*4H, B)
after w), so one loop serves every format mix, and a dense product never
multiplies the zero off-diagonal blocks that a direction-stacked (2H wide)
recurrence would. As in :mod:`symbiotic.runtime.lm`, products run on
transposed activations (the layout CSR kernels want). The backward direction
reads each utterance's valid frames reversed: ``u_x`` is applied to the
unreversed input (one product for both directions), and the backward rows are then
read in reversed time, which equals reversing the input first. The native kernel takes
the reversal as ``order`` and does the rest itself (runtime/native/hlstm.cpp); the torch
loop gathers the backward rows once.

:func:`to_state` / :func:`from_state` (de)serialise it.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.errors import UserError
from symbiotic.models.ds2 import HARDTANH_MAX, DeepSpeech2, DS2Config, reverse_padded, time_mask
from symbiotic.models.hlstm import GATES, HLSTMLayer
from symbiotic.runtime import native
from symbiotic.runtime.formats import MATRICES, check_formats
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

__all__ = ["InferenceBiHLSTM", "InferenceDS2", "export", "to_state", "from_state"]

STATE_KIND = "symbiotic.inference_ds2"
STATE_VERSION = 1


# ---- the recurrence ---------------------------------------------------------------------------

def _bi_recurrence(pre: Tensor, h: Tensor, c: Tensor, u_h: Tensor, w: Tensor, w_b: Tensor,
                   u_h_csr: bool, w_csr: bool) -> Tensor:
    """The per-step loop for D stacked directions, transposed layout: outputs (T, D, H, B).

    pre (T, D*4G, B) (any strides with D = 1; contiguous steps with D = 2);
    h, c (D, H, B); u_h, w as in the module docstring; w_b (D*4H, 1) if
    ``w_csr``, else (D*4, H, 1).
    """
    D, H, B = h.shape
    G = pre.shape[1] // (4 * D)
    outs = []
    for t in range(pre.shape[0]):
        if u_h_csr:
            z = torch.addmm(pre[t], u_h, h.reshape(D * H, B))  # (D*4G, B)
        else:
            z = torch.baddbmm(pre[t].view(D, 4 * G, B), u_h, h).view(D * 4 * G, B)
        z = z.relu_()
        if w_csr:
            gates = torch.addmm(w_b, w, z).view(D, 4 * H, B)
        else:
            gates = torch.baddbmm(w_b, w, z.view(D * 4, G, B)).view(D, 4 * H, B)
        s = gates[:, : 3 * H].sigmoid()  # f, i, o in one call
        c = torch.addcmul(s[:, :H] * c, s[:, H : 2 * H], gates[:, 3 * H :].tanh())
        h = s[:, 2 * H :] * c.tanh()
        outs.append(h)
    return torch.stack(outs)


# Dense u_h and w: the direction-batched loop above against the suggested
# direction-stacked alternative (one 2H-wide recurrence with block-diagonal
# dense u_h (8G, 2H) and w (4, 2H, 2G), run by the language model's scripted loop), side by
# side on this CPU at H = G = 128, B = 16, T = 130, 1 thread, 5 interleaved
# rounds of measure(), medians: stacked 25.1 ms, batched 14.8 ms scripted /
# 17.9 ms plain: the batched loop is 1.7x faster (the stacked one multiplies
# the zero blocks, twice the FLOPs). With 2 threads (noisier, shared machine)
# 55 ms vs 45 ms. Scripting follows runtime/lm.py's measurement: it pays with
# dense u_h and w only, so the scripted loop runs then, the plain one otherwise.


def _direction_steps(lengths: Tensor, T: int, D: int) -> Tensor:
    """(T, D, 1, B) source step per (step, direction, batch): t forward, t reversed within
    the valid frames backward (reverse_padded's own map, applied to step numbers)."""
    t = torch.arange(T, device=lengths.device)[:, None].expand(T, lengths.shape[0])  # (T, B)
    steps = [t, reverse_padded(t, lengths)][:D]
    return torch.stack(steps, 1).unsqueeze(2)


class InferenceBiHLSTM(InferenceLayer):
    """Both directions of one trained bidirectional (or one unidirectional) H-LSTM layer,
    inference only, weights in the module docstring's layout. Outputs equal
    ``BiHLSTM.eval()``'s (directions summed) on every valid frame."""

    @staticmethod
    def layout(D: int, I: int, H: int, G: int) -> dict[str, tuple[tuple, tuple]]:
        """(dense shape, CSR shape) of each matrix, as in the module docstring."""
        return {"u_x": ((D * GATES * G, I), (D * GATES * G, I)),
                "u_h": ((D, GATES * G, H), (D * GATES * G, D * H)),
                "w": ((D * GATES, H, G), (D * GATES * H, D * GATES * G))}

    @classmethod
    @torch.no_grad()
    def from_trained(cls, directions: list[HLSTMLayer], formats: Mapping[str, str]) -> InferenceBiHLSTM:
        """The directions' effective weights (masks applied), stacked and packed in ``formats``."""
        formats = check_formats(formats)
        get = {name: [effective(d, name).detach().clone() for d in directions] for name in MATRICES}
        u_b = torch.cat([d.u_b.detach() for d in directions])  # (D*4G,)
        w_b = torch.cat([d.w_b.detach() for d in directions])  # (D*4, H)
        u_x, w = torch.cat(get["u_x"]), torch.cat(get["w"])  # (D*4G, I), (D*4, H, G)
        weights = {
            "u_x": to_csr(u_x) if formats["u_x"] == "csr" else u_x,
            "u_h": to_csr(torch.block_diag(*get["u_h"])) if formats["u_h"] == "csr" else torch.stack(get["u_h"]),
            "w": to_csr(block_diag(w)) if formats["w"] == "csr" else w,
        }
        return cls(formats, weights, u_b, w_b)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (T, B, I), lengths (B,) -> (T, B, H) contiguous, directions summed; padding undefined."""
        T, B, _ = x.shape
        D, H = self.directions, self.hidden_size
        if T == 0:
            return x.new_zeros(0, B, H)
        if native.runs(x):  # the kernel reads the backward frames in reversed order and sums the directions
            return self.native(x, reverse_padded(torch.arange(T)[:, None].expand(T, B), lengths) if D == 2 else None)
        out = self._torch_loop(x, lengths).permute(0, 3, 1, 2)  # (T, B, D, H), a view
        if D == 1:
            return out[:, :, 0].contiguous()
        return out[:, :, 0] + reverse_padded(out[:, :, 1], lengths)

    def _torch_loop(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The per-step loop in torch operations (the ``SYMBIOTIC_RUNTIME=torch`` path) -> (T, D, H, B)."""
        T, B, _ = x.shape
        D, H = self.directions, self.hidden_size
        pre = self.input_half(x)  # (T, D*4G, B), a view
        if D == 2:  # one gather reverses the backward rows in time and makes each step contiguous
            R = pre.shape[1] // 2
            index = _direction_steps(lengths, T, D).expand(T, D, R, B)
            pre = pre.reshape(T, D, R, B).gather(0, index).view(T, D * R, B)
        u_h_csr, w_csr = self.is_csr("u_h"), self.is_csr("w")
        loop = _bi_recurrence if u_h_csr or w_csr else scripted(_bi_recurrence)
        h = x.new_zeros(D, H, B)
        return loop(pre, h, h.clone(), self.u_h, self.w, self.loop_bias(), u_h_csr, w_csr)

    def extra_repr(self) -> str:
        return f"directions={self.directions}, {super().extra_repr()}"


# ---- the model --------------------------------------------------------------------------------

def _conv_geometry(n_features: int, conv_channels: int) -> tuple[list[tuple], int]:
    """[(weight shape, stride, padding)] per conv block and the flattened width after them,
    from DeepSpeech2's own builder (on the meta device: no memory, no RNG draws)."""
    cfg = DS2Config(n_features=n_features, conv_channels=conv_channels, hidden=1, gate_hidden=1, layers=1)
    with torch.device("meta"):
        blocks, width = DeepSpeech2._build_conv(cfg)
    return [(tuple(b[0].weight.shape), b[0].stride, b[0].padding) for b in blocks], width


def _conv_lengths(lengths: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    """Valid frames after a conv along time, per utterance (dilation 1, as the model's)."""
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


class InferenceDS2(nn.Module):
    """MFCC frames (T, B, F) -> CTC log-probabilities (T', B, labels); always in eval mode.

    Built by :func:`export` or :func:`from_state`. ``conv`` holds
    (weight, bias) per block with BatchNorm folded in; ``norms`` holds
    (scale, shift) per layer after the first.
    """

    def __init__(self, n_features: int, conv: list[tuple[Tensor, Tensor]], layers: list[InferenceBiHLSTM],
                 norms: list[tuple[Tensor, Tensor]], decoder_w: Tensor, decoder_b: Tensor):
        super().__init__()
        self.n_features = n_features
        geometry, _ = _conv_geometry(n_features, conv[0][0].shape[0])
        self._conv_steps = [(stride, padding) for _, stride, padding in geometry]
        for i, (weight, bias) in enumerate(conv):
            self.register_buffer(f"conv{i}_w", weight)  # (C, C_in, K_t, K_f)
            self.register_buffer(f"conv{i}_b", bias)  # (C,)
        self.layers = nn.ModuleList(layers)
        for l, (scale, shift) in enumerate(norms):
            self.register_buffer(f"norm{l}_scale", scale)  # (H_l,): input of layer l + 1
            self.register_buffer(f"norm{l}_shift", shift)
        self.register_buffer("decoder_w", decoder_w)  # (labels, H_last)
        self.register_buffer("decoder_b", decoder_b)  # (labels,)
        self.eval()

    def conv(self) -> list[tuple[Tensor, Tensor]]:
        return [(getattr(self, f"conv{i}_w"), getattr(self, f"conv{i}_b")) for i in range(len(self._conv_steps))]

    def norms(self) -> list[tuple[Tensor, Tensor]]:
        return [(getattr(self, f"norm{l}_scale"), getattr(self, f"norm{l}_shift"))
                for l in range(len(self.layers) - 1)]

    @property
    def dims(self) -> dict:
        """Physical sizes (per-layer lists for the recurrent widths)."""
        return {
            "n_features": self.n_features,
            "conv_channels": self.conv0_w.shape[0],
            "hidden": [layer.hidden_size for layer in self.layers],
            "gate_hidden": [layer.gate_hidden for layer in self.layers],
            "labels": self.decoder_w.shape[0],
            "bidirectional": self.layers[0].directions == 2,
        }

    def widths(self) -> dict[str, int]:
        """Physical width per unit key, as :meth:`DeepSpeech2.widths` names them."""
        return layer_widths(self.layers)

    @property
    def formats(self) -> list[dict[str, str]]:
        """The format of every product, one dict per layer (the same for both directions)."""
        return [dict(layer.formats) for layer in self.layers]

    @property
    def decoder_format(self) -> str:
        return format_of(self.decoder_w)

    @torch.no_grad()
    def frontend(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, F), lengths (B,) -> features (T', B, C * F'), lengths (B,)."""
        if x.shape[2] != self.n_features:
            raise UserError(f"features have {x.shape[2]} coefficients but the model takes {self.n_features}",
                            "prepare AN4 with the n_mfcc the model was built for")
        lengths = lengths.to(x.device)
        h = x.permute(1, 0, 2).unsqueeze(1)  # (B, 1, T, F)
        for (weight, bias), (stride, padding) in zip(self.conv(), self._conv_steps):
            h = F.conv2d(h, weight, bias, stride, padding).clamp_(0.0, HARDTANH_MAX)  # (B, C, T', F')
            lengths = _conv_lengths(lengths, weight.shape[2], stride[0], padding[0])
            # Zeroed padding: the next conv sees what it would see for each utterance alone.
            h = h * time_mask(lengths, h.shape[2]).t()[:, None, :, None].to(h.dtype)
        B, C, T, Fq = h.shape
        return h.permute(2, 0, 1, 3).reshape(T, B, C * Fq), lengths

    @torch.no_grad()
    def recurrent_stack(self, h: Tensor, lengths: Tensor) -> Tensor:
        """(T', B, I) -> (T', B, H_last), padding zeroed: the layers and the norms between them."""
        lengths = lengths.to(h.device)
        keep = time_mask(lengths, h.shape[0]).unsqueeze(2).to(h.dtype)  # (T', B, 1)
        norms = [None, *self.norms()]
        for layer, norm in zip(self.layers, norms):
            if norm is not None:
                h = torch.addcmul(norm[1], h, norm[0])  # eval BatchNorm1d: per-unit affine
            h = layer(h, lengths) * keep
        return h

    @torch.no_grad()
    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, F) zero-padded, lengths (B,) -> log_probs (T', B, labels), out_lengths (B,)."""
        h, lengths = self.frontend(x, lengths)
        h = self.recurrent_stack(h, lengths)
        return F.log_softmax(decode(h, self.decoder_w, self.decoder_b), dim=2), lengths


# ---- export -----------------------------------------------------------------------------------

def _bn_affine(norm: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Eval BatchNorm as y = x * scale + shift, per channel."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale.detach().clone(), (norm.bias - norm.running_mean * scale).detach().clone()


def _folded_conv(block: nn.Sequential) -> tuple[Tensor, Tensor]:
    """Conv2d (no bias) + eval BatchNorm2d as one conv weight (C, C_in, K_t, K_f) and bias (C,)."""
    scale, shift = _bn_affine(block[1])
    return (block[0].weight * scale[:, None, None, None]).detach().clone(), shift


def export(model: DeepSpeech2, formats: Mapping[str, str], thinned: bool = True,
           decoder: str = "dense") -> InferenceDS2:
    """``model``'s (rnn="hlstm") inference form, thinned first (``thinned=False``: at its own
    widths, see :func:`symbiotic.runtime.packing.deployable`); ``formats`` (one of
    "dense"/"csr" for each of u_x, u_h, w) applies to both directions of every layer,
    ``decoder`` to the output matrix."""
    formats = check_formats(formats)
    if not isinstance(model, DeepSpeech2) or model.rnn != "hlstm":
        kind = model.rnn if isinstance(model, DeepSpeech2) else type(model).__name__
        raise UserError(f"the DeepSpeech2 export takes an H-LSTM model, got {kind!r}",
                        "export the rnn='hlstm' model (the 'lstm' baseline runs as it is)")
    return _packed(deployable(model, thinned), formats, decoder)


@torch.no_grad()
def _packed(model: DeepSpeech2, formats: dict[str, str], decoder: str) -> InferenceDS2:
    return InferenceDS2(
        model.n_features,
        [_folded_conv(block) for block in model.conv],
        [InferenceBiHLSTM.from_trained(layer.directions(), formats) for layer in model.layers],
        [_bn_affine(norm) for norm in model.norms],
        packed(effective(model.decoder, "weight").detach().clone(), decoder),
        model.decoder.bias.detach().clone(),
    )


# ---- serialisation ----------------------------------------------------------------------------

def to_state(m: InferenceDS2) -> dict:
    """Everything :func:`from_state` needs, as plain tensors and containers (CPU)."""
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "dims": m.dims,
        "conv": [{"weight": plain(w), "bias": plain(b)} for w, b in m.conv()],
        "layers": [layer_state(layer) for layer in m.layers],
        "norms": [{"scale": plain(s), "shift": plain(t)} for s, t in m.norms()],
        "decoder_format": m.decoder_format,
        "decoder_w": plain(m.decoder_w),
        "decoder_b": plain(m.decoder_b),
    }


def _entries(state: Mapping, name: str, n: int) -> list:
    raw = read_field(state, name, name, list)
    if len(raw) != n:
        raise state_error(name, f"has {len(raw)} entries, expected {n}")
    return raw


def _widths(dims: Mapping, name: str) -> list[int]:
    sizes = read_field(dims, f"dims.{name}", name, list)
    for l, n in enumerate(sizes):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise state_error(f"dims.{name}.{l}", f"is {n!r}, expected an integer >= 1")
    return sizes


def from_state(state: Mapping) -> InferenceDS2:
    """The :class:`InferenceDS2` of a :func:`to_state` dict; UserError naming the bad key."""
    check_header(state, STATE_KIND, STATE_VERSION)
    dims = read_field(state, "dims", "dims", Mapping)
    n_features = read_count(dims, "dims.n_features", "n_features", 1)
    channels = read_count(dims, "dims.conv_channels", "conv_channels", 1)
    labels = read_count(dims, "dims.labels", "labels", 2)
    D = 2 if read_field(dims, "dims.bidirectional", "bidirectional", bool) else 1
    hidden, gate_hidden = _widths(dims, "hidden"), _widths(dims, "gate_hidden")
    if not hidden or len(hidden) != len(gate_hidden):
        raise state_error("dims.hidden", f"is {hidden} for dims.gate_hidden {gate_hidden}, "
                                         "expected one width per layer")
    geometry, I = _conv_geometry(n_features, channels)
    conv, dtype = [], None
    for i, (raw, (shape, _, _)) in enumerate(zip(_entries(state, "conv", len(geometry)), geometry)):
        weight = read_dense(raw, f"conv.{i}.weight", "weight", shape, dtype)
        dtype = weight.dtype
        conv.append((weight, read_dense(raw, f"conv.{i}.bias", "bias", (channels,), dtype)))
    layers = []
    for l, (raw, H, G) in enumerate(zip(_entries(state, "layers", len(hidden)), hidden, gate_hidden)):
        layers.append(read_layer(raw, f"layers.{l}", InferenceBiHLSTM, (D, I, H, G), dtype))
        I = H
    norms = [(read_dense(raw, f"norms.{l}.scale", "scale", (H,), dtype),
              read_dense(raw, f"norms.{l}.shift", "shift", (H,), dtype))
             for l, (raw, H) in enumerate(zip(_entries(state, "norms", len(hidden) - 1), hidden))]
    decoder_w = read_decoder(state, (labels, I), dtype)
    decoder_b = read_dense(state, "decoder_b", "decoder_b", (labels,), dtype)
    return InferenceDS2(n_features, conv, layers, norms, decoder_w, decoder_b)
