"""DeepSpeech2-style acoustic model: 2-D convolutions, bidirectional recurrent layers, CTC.

The layout follows deepspeech.pytorch (the paper's reference for AN4):
two Conv2d + BatchNorm2d + Hardtanh(0, 20) blocks over (time, frequency),
then bidirectional recurrent layers with BatchNorm1d on the input of every
layer after the first, directions summed so each layer stays ``hidden`` wide,
then a linear layer to the CTC labels. The recurrent layers are either the
H-LSTM (the model the symbiotic flow grows and prunes) or stock ``nn.LSTM``
(the fastest kernels the device has: the baseline).

Padding never leaks into an utterance's valid outputs: conv outputs past each
utterance's length are zeroed before the next conv (so it sees the same zeros
as its own padding would give), the backward direction runs over each
utterance's valid frames reversed, and BatchNorm1d statistics use valid frames
only. BatchNorm2d statistics include the (zeroed) padded frames, as in
deepspeech.pytorch; length bucketing keeps those few.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from symbiotic.data.an4 import LABELS
from symbiotic.errors import UserError
from symbiotic.models.hlstm import GATES, HLSTMLayer, hlstm_links, hlstm_unit_keys, init_new_hlstm_units
from symbiotic.sparsity.masks import effective
from symbiotic.sparsity.units import Link, UnitKey

__all__ = ["DS2Config", "DeepSpeech2", "BiHLSTM", "BiLSTM", "ctc_loss", "reverse_padded", "time_mask",
           "RNN_KINDS"]

RNN_KINDS = ("hlstm", "lstm")
HARDTANH_MAX = 20.0  # DeepSpeech2's clipped ReLU
CONV_TIME_KERNEL = 11
CONV_FREQ_KERNELS = (41, 21)  # deepspeech.pytorch's, shrunk to the feature count when larger
CONV_STRIDES = ((2, 2), (1, 2))  # (time, frequency): time halved once, frequency twice


@dataclass(frozen=True, kw_only=True)
class DS2Config:
    """Shape of a :class:`DeepSpeech2` (keyword-only: the fields are many and alike).

    ``hidden`` and ``gate_hidden`` take one width for every layer or one per
    layer (row/column pruning leaves layers of different widths); the config
    always holds them as per-layer tuples.
    """

    n_features: int  # MFCC coefficients per frame
    labels: int = len(LABELS)  # CTC classes, blank included
    conv_channels: int = 32
    rnn: str = "hlstm"  # "hlstm" or "lstm" (stock nn.LSTM baseline)
    hidden: int | tuple[int, ...]  # per direction; directions are summed
    gate_hidden: int | tuple[int, ...] = 0  # H-LSTM gate hidden layer width; unused by "lstm"
    layers: int
    bidirectional: bool = True
    dropout_gate: float = 0.2  # in the H-LSTM gates' hidden layers; unused by "lstm"

    def __post_init__(self):
        for name, lo in (("n_features", 1), ("labels", 2), ("conv_channels", 1), ("layers", 1)):
            _check_size(name, getattr(self, name), lo)
        if self.rnn not in RNN_KINDS:
            raise UserError(f"rnn={self.rnn!r} is not one of {RNN_KINDS}", "set rnn to 'hlstm' or 'lstm'")
        object.__setattr__(self, "hidden", _per_layer("hidden", self.hidden, self.layers, 1))
        object.__setattr__(self, "gate_hidden", _per_layer("gate_hidden", self.gate_hidden, self.layers,
                                                           1 if self.rnn == "hlstm" else 0))
        if not isinstance(self.bidirectional, bool):
            raise UserError(f"bidirectional={self.bidirectional!r} is not true/false",
                            "set bidirectional to true or false")
        if not 0.0 <= self.dropout_gate < 1.0:
            raise UserError(f"dropout_gate={self.dropout_gate} is outside [0, 1)",
                            "set dropout_gate to a probability below 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"], d["gate_hidden"] = list(self.hidden), list(self.gate_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DS2Config":
        return cls(**d)


def _per_layer(name: str, value, layers: int, lo: int) -> tuple[int, ...]:
    """One int for every layer, or a list with one per layer, as a tuple."""
    sizes = (value,) * layers if isinstance(value, int) else tuple(value)
    if len(sizes) != layers:
        raise UserError(f"{name} has {len(sizes)} widths for {layers} layers",
                        f"give {name} one width, or one per layer")
    for n in sizes:
        _check_size(name, n, lo)
    return sizes


def _check_size(name: str, n, lo: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < lo:
        raise UserError(f"{name}={n!r} is not an integer >= {lo}", f"set {name} to an integer >= {lo}")


def time_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) bool: True at frames before each utterance's length."""
    return torch.arange(steps, device=lengths.device)[:, None] < lengths[None, :]


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first ``lengths[b]`` steps of each sequence in x (T, B, ...); padding stays put.

    Reversing the whole padded tensor would start a short sequence's backward
    pass on padding; reversing only the valid part starts it on its last real
    frame. Applying it twice is the identity, so it also maps outputs back.
    """
    T, B = x.shape[:2]
    t = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    n = lengths.to(x.device)[None, :]  # (1, B)
    index = torch.where(t < n, n - 1 - t, t)  # (T, B)
    index = index.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def masked_batch_norm(norm: nn.BatchNorm1d, x: Tensor, mask: Tensor) -> Tensor:
    """BatchNorm1d over x (T, B, H) whose training statistics come from valid frames only.

    In eval mode the norm is per-element, so padding cannot reach valid frames
    and the whole tensor is normalised at once (no data-dependent indexing).
    """
    T, B, H = x.shape
    if not norm.training:
        return norm(x.reshape(T * B, H)).view(T, B, H)
    out = torch.zeros_like(x)
    out[mask] = norm(x[mask])  # (valid frames, H)
    return out


class BiHLSTM(nn.Module):
    """One H-LSTM layer per direction; the backward one reads each utterance's valid frames reversed.

    Both directions run in ONE time loop, stacked on a leading direction axis
    (batched products), which halves the Python-level operations per step: at
    the widths a CPU trains, those, not the arithmetic, set the time. The two
    directions share their widths (gate neurons are pruned in both at once), so
    they stack without padding.
    """

    def __init__(self, input_size: int, hidden: int, gate_hidden: int, dropout: float, bidirectional: bool):
        super().__init__()
        self.fwd = HLSTMLayer(input_size, hidden, gate_hidden, dropout)
        self.bwd = HLSTMLayer(input_size, hidden, gate_hidden, dropout) if bidirectional else None

    def directions(self) -> list[HLSTMLayer]:
        return [self.fwd] if self.bwd is None else [self.fwd, self.bwd]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (T, B, I), lengths (B,) -> (T, B, H), directions summed; padded frames undefined."""
        dirs = self.directions()
        # Padding follows the valid frames, so the forward pass never sees it before them.
        inputs = [x] if len(dirs) == 1 else [x, reverse_padded(x, lengths)]
        pre = torch.stack([F.linear(i, effective(d, "u_x"), d.u_b) for d, i in zip(dirs, inputs)])  # (D, T, B, 4G)
        u_h_t = torch.stack([effective(d, "u_h") for d in dirs]).transpose(1, 2)  # (D, H, 4G)
        w_t = torch.cat([effective(d, "w") for d in dirs]).transpose(1, 2)  # (D*4, G, H)
        w_b = torch.cat([d.w_b for d in dirs]).unsqueeze(1)  # (D*4, 1, H)
        out = _bidirectional_steps(pre, u_h_t, w_t, w_b, self.fwd.dropout, self.training)  # (D, T, B, H)
        if len(dirs) == 1:
            return out[0]
        return out[0] + reverse_padded(out[1], lengths)


def _bidirectional_steps(pre: Tensor, u_h_t: Tensor, w_t: Tensor, w_b: Tensor, dropout: float,
                         training: bool) -> Tensor:
    """The H-LSTM recurrence for D stacked directions from zero state: (D, T, B, 4G) -> (D, T, B, H).

    The same equations as :class:`HLSTMLayer` (gates f, i, o, g), with every
    product batched over the direction axis.
    """
    D, T, B, G4 = pre.shape
    H, G = u_h_t.shape[1], G4 // GATES
    h = pre.new_zeros(D, B, H)
    c = pre.new_zeros(D, B, H)
    outs = []
    for t in range(T):
        z = torch.relu(pre[:, t] + torch.bmm(h, u_h_t))  # (D, B, 4G)
        z = F.dropout(z, dropout, training)
        z = z.view(D, B, GATES, G).permute(0, 2, 1, 3).reshape(D * GATES, B, G)
        gates = torch.baddbmm(w_b, z, w_t).view(D, GATES, B, H)
        f, i, o = torch.sigmoid(gates[:, :3]).unbind(1)  # each (D, B, H)
        c = f * c + i * torch.tanh(gates[:, 3])
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1) if outs else pre.new_zeros(D, 0, B, H)


class BiLSTM(nn.Module):
    """Stock nn.LSTM layer on packed sequences (padding skipped by the kernel), directions summed."""

    def __init__(self, input_size: int, hidden: int, bidirectional: bool):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, bidirectional=bidirectional)

    def directions(self) -> list[nn.LSTM]:
        return [self.lstm]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (T, B, I), lengths (B,) -> (T, B, H); padded frames are zero."""
        T, B, _ = x.shape
        if bool((lengths == T).all()):
            # No padding: packing would only add work (this is the latency benchmark's case,
            # and skipping it there favours the baseline, never the flow's model).
            out, _ = self.lstm(x)
        else:
            # The packing kernel wants lengths on the CPU, whatever the device of x.
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, total_length=T)  # (T, B, D * H)
        return out.view(T, B, -1, self.lstm.hidden_size).sum(2)  # (T, B, H)


def _conv_block(in_ch: int, out_ch: int, kernel: tuple[int, int], stride: tuple[int, int]) -> nn.Sequential:
    """Conv2d (no bias: BatchNorm's shift replaces it) + BatchNorm2d + Hardtanh(0, 20)."""
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.Hardtanh(0.0, HARDTANH_MAX, inplace=True),
    )


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _time_length(conv: nn.Conv2d, lengths: Tensor) -> Tensor:
    """Valid frames after ``conv`` along time (dim 0 of its kernel), per utterance (B,)."""
    k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
    return torch.div(lengths + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1


class DeepSpeech2(nn.Module):
    """MFCC frames (T, B, F) -> CTC log-probabilities (T', B, labels), T' = ceil(T / 2)."""

    def __init__(self, cfg: DS2Config):
        super().__init__()
        self.n_features = cfg.n_features
        self.rnn = cfg.rnn
        self.bidirectional = cfg.bidirectional
        self.dropout_gate = cfg.dropout_gate
        self.conv, width = self._build_conv(cfg)
        inputs = (width,) + cfg.hidden[:-1]
        self.layers = nn.ModuleList(self._recurrent(cfg, i, h, g)
                                    for i, h, g in zip(inputs, cfg.hidden, cfg.gate_hidden))
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for h in cfg.hidden[:-1])
        self.decoder = nn.Linear(cfg.hidden[-1], cfg.labels)
        # Masked like every weight that reads a unit: a removed last-layer unit's column must
        # stay zero through retraining, or the unit (whose biases still learn) would come back.
        self.decoder.register_buffer("mask_weight", torch.ones_like(self.decoder.weight))
        self._gate_hidden = cfg.gate_hidden  # kept for config() of the "lstm" kind
        self.reset_parameters()

    @staticmethod
    def _build_conv(cfg: DS2Config) -> tuple[nn.ModuleList, int]:
        """The two conv blocks, frequency kernels fitted to the feature count; returns them and
        the flattened width (channels x remaining frequency bins) the first recurrent layer reads."""
        blocks, freq, channels = [], cfg.n_features, 1
        for freq_kernel, stride in zip(CONV_FREQ_KERNELS, CONV_STRIDES):
            kernel = (CONV_TIME_KERNEL, min(freq_kernel, freq))
            blocks.append(_conv_block(channels, cfg.conv_channels, kernel, stride))
            freq = _out_size(freq, kernel[1], stride[1], kernel[1] // 2)
            channels = cfg.conv_channels
        return nn.ModuleList(blocks), channels * freq

    @staticmethod
    def _recurrent(cfg: DS2Config, input_size: int, hidden: int, gate_hidden: int) -> nn.Module:
        if cfg.rnn == "hlstm":
            return BiHLSTM(input_size, hidden, gate_hidden, cfg.dropout_gate, cfg.bidirectional)
        return BiLSTM(input_size, hidden, cfg.bidirectional)

    @property
    def config(self) -> DS2Config:
        """The config of the CURRENT tensor shapes."""
        firsts = [layer.directions()[0] for layer in self.layers]
        return DS2Config(
            n_features=self.n_features,
            labels=self.decoder.out_features,
            conv_channels=self.conv[0][0].out_channels,
            rnn=self.rnn,
            hidden=tuple(m.hidden_size for m in firsts),
            gate_hidden=tuple(m.gate_hidden for m in firsts) if self.rnn == "hlstm" else self._gate_hidden,
            layers=len(self.layers),
            bidirectional=self.bidirectional,
            dropout_gate=self.dropout_gate,
        )

    def recurrent_layers(self) -> list[nn.Module]:
        """The recurrent modules in order: HLSTMLayer per direction (forward, backward) per
        layer for "hlstm", one bidirectional nn.LSTM per layer for "lstm"."""
        return [module for layer in self.layers for module in layer.directions()]

    # ---- structured units (what row/column pruning removes; see sparsity/units.py) -----------
    def unit_keys(self) -> list[UnitKey]:
        """``gate.0, hidden.0, gate.1, ...``: gate neurons are shared by both directions
        (pruned in both at once, so the directions keep one width); the conv features are no unit."""
        self._need_hlstm()
        return [k for l in range(len(self.layers)) for k in hlstm_unit_keys(f"gate.{l}", f"hidden.{l}")]

    def unit_links(self) -> list[Link]:
        self._need_hlstm()
        links = []
        directions = ("fwd", "bwd") if self.bidirectional else ("fwd",)
        for l in range(len(self.layers)):
            prev = None if l == 0 else f"hidden.{l - 1}"
            for d in directions:
                links += hlstm_links(f"layers.{l}.{d}.", prev, f"gate.{l}", f"hidden.{l}")
            if l > 0:  # the norm on layer l's input belongs to the units of layer l-1
                n, key = f"norms.{l - 1}.", f"hidden.{l - 1}"
                links += [Link(n + "weight", (key, (0,)), None), Link(n + "bias", (key, (0,)), None),
                          Link(n + "running_mean", (key, (0,)), None, buffer=True),
                          Link(n + "running_var", (key, (0,)), None, buffer=True)]
        last = f"hidden.{len(self.layers) - 1}"
        return links + [Link("decoder.weight", None, (last, (1,))), Link("decoder.bias", None, None)]

    def widths(self) -> dict[str, int]:
        """Physical width per unit key (gate keys: neurons per gate)."""
        cfg = self.config
        return {**{f"gate.{l}": g for l, g in enumerate(cfg.gate_hidden)},
                **{f"hidden.{l}": h for l, h in enumerate(cfg.hidden)}}

    def resized(self, widths: dict[str, int]) -> DS2Config:
        """This model's config with the widths of ``widths`` (unit key -> width) instead."""
        L = len(self.layers)
        return dataclasses.replace(self.config, hidden=tuple(widths[f"hidden.{l}"] for l in range(L)),
                                   gate_hidden=tuple(widths[f"gate.{l}"] for l in range(L)))

    @torch.no_grad()
    def init_new_units(self, key: str, index: Tensor, generator: torch.Generator) -> None:
        """Give grown units a live start: random biases like a fresh layer's, and an identity
        batch norm (a zero scale would block every gradient through the new unit)."""
        kind, l = key.split(".")
        l = int(l)
        for layer in self.layers[l].directions():
            init_new_hlstm_units(layer, kind, index, generator)
        if kind == "hidden" and l < len(self.norms):
            self.norms[l].weight[index] = 1.0
            self.norms[l].bias[index] = 0.0
            self.norms[l].running_var[index] = 1.0
            self.norms[l].running_mean[index] = 0.0

    def _need_hlstm(self) -> None:
        if self.rnn != "hlstm":
            raise UserError("only the H-LSTM model has prunable units", "prune the rnn='hlstm' model")

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Every weight uniform in ±1/sqrt(fan_in) (PyTorch's defaults), drawn from ``generator``
        so a seed fixes the whole model; BatchNorm to identity; zero decoder bias."""
        for block in self.conv:
            conv = block[0]
            bound = 1.0 / math.sqrt(conv.weight[0].numel())
            conv.weight.uniform_(-bound, bound, generator=generator)
            block[1].reset_parameters()
        for norm in self.norms:
            norm.reset_parameters()
        for module in self.recurrent_layers():
            if isinstance(module, HLSTMLayer):
                module.reset_parameters(generator)
            else:
                bound = 1.0 / math.sqrt(module.hidden_size)
                for p in module.parameters():
                    p.uniform_(-bound, bound, generator=generator)
        bound = 1.0 / math.sqrt(self.decoder.in_features)
        self.decoder.weight.uniform_(-bound, bound, generator=generator).mul_(self.decoder.mask_weight)
        self.decoder.bias.zero_()

    def conv_output_length(self, lengths: Tensor) -> Tensor:
        """Frames after the convolutions, per utterance: floor((L + 2p - d(k-1) - 1)/s + 1) per conv."""
        for block in self.conv:
            lengths = _time_length(block[0], lengths)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, F) zero-padded, lengths (B,) -> log_probs (T', B, C), out_lengths (B,)."""
        h, lengths = self.frontend(x, lengths)
        h = self.recurrent_stack(h, lengths)
        logits = F.linear(h, effective(self.decoder, "weight"), self.decoder.bias)
        return F.log_softmax(logits, dim=2), lengths  # (T', B, C)

    def frontend(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The convolutions: x (T, B, F), lengths (B,) -> features (T', B, C * F'), lengths (B,)."""
        if x.shape[2] != self.n_features:
            raise UserError(f"features have {x.shape[2]} coefficients but the model takes {self.n_features}",
                            "prepare AN4 with the n_mfcc the model was built for")
        lengths = lengths.to(x.device)  # collate gives CPU lengths; masks are built beside x
        return self._convolve(x, lengths)

    def recurrent_stack(self, h: Tensor, lengths: Tensor) -> Tensor:
        """Recurrent layers with batch norm between them: (T', B, I) -> (T', B, H), padding zeroed.

        The part of the model the symbiotic flow changes (the convolutions and
        the decoder keep their shapes), timed on its own by the evaluation.
        """
        mask = time_mask(lengths, h.shape[0])  # (T', B)
        for l, layer in enumerate(self.layers):
            if l > 0:
                h = masked_batch_norm(self.norms[l - 1], h, mask)
            h = layer(h, lengths) * mask.unsqueeze(2)  # (T', B, H), padding zeroed
        return h

    def _convolve(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(T, B, F) -> (T', B, C * F') and the new lengths; frames past a length are zeroed
        after each block, so the next conv sees what it would see for that utterance alone."""
        h = x.permute(1, 0, 2).unsqueeze(1)  # (B, 1, T, F)
        for block in self.conv:
            h = block(h)  # (B, C, T', F')
            lengths = _time_length(block[0], lengths)
            keep = time_mask(lengths, h.shape[2]).t()  # (B, T')
            h = h * keep[:, None, :, None].to(h.dtype)
        B, C, T, Fq = h.shape
        return h.permute(2, 0, 1, 3).reshape(T, B, C * Fq), lengths  # (T', B, C * F')


def ctc_loss(log_probs: Tensor, out_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """CTC loss summed over each utterance's frames, averaged over the batch; blank = 0.

    This is deepspeech.pytorch's scale (the one the paper's learning rate of
    3e-4 goes with); dividing by the transcript length as well, torch's
    ``"mean"``, would shrink the gradients ~20x on AN4.

    ``zero_infinity``: an utterance too short for its transcript (possible after
    the conv halves time) gives an infinite loss; zeroing it keeps one bad
    utterance from turning the whole batch's gradient into NaN.
    """
    total = F.ctc_loss(log_probs, targets, out_lengths, target_lengths,
                       blank=0, reduction="sum", zero_infinity=True)
    return total / max(len(target_lengths), 1)
