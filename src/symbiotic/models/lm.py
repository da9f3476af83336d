"""Word-level language models: the H-LSTM model and the stacked-LSTM baseline.

Both follow the AWD-LSTM recipe for regularisation: whole word types are
dropped from the embedding matrix (embedded dropout), and dropout on the
embedding output, between layers and before the decoder uses one mask per
sequence shared over time (locked dropout), which regularises recurrent
models better than a fresh mask per step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.errors import UserError
from symbiotic.models.hlstm import HLSTMLayer, hlstm_links, hlstm_unit_keys, init_new_hlstm_units
from symbiotic.sparsity.masks import effective
from symbiotic.sparsity.units import Link, UnitKey

__all__ = ["LMConfig", "HLSTMLanguageModel", "StackedLMConfig", "StackedLSTMLanguageModel"]

EMBED_INIT = 0.1  # AWD-LSTM's embedding init range


def _check_dropout(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise UserError(f"{name}={p} is outside [0, 1)", f"set {name} to a probability below 1")


def _check_size(name: str, n: int, lo: int) -> None:
    if not isinstance(n, int) or n < lo:
        raise UserError(f"{name}={n!r} is not an integer >= {lo}", f"set {name} to an integer >= {lo}")


@dataclass(frozen=True)
class LMConfig:
    """Shape and regularisation of an :class:`HLSTMLanguageModel`."""

    vocab: int
    embed: int
    hidden: tuple[int, ...]  # one per layer
    gate_hidden: tuple[int, ...]  # one per layer
    dropout_gate: float = 0.2  # in the gates' hidden layers
    dropout_embed: float = 0.65  # embedding output, between layers, before the decoder
    dropout_words: float = 0.1  # whole word types from the embedding matrix

    def __post_init__(self):
        # Lists arrive from YAML/JSON; tuples keep the frozen config hashable.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "gate_hidden", tuple(self.gate_hidden))
        _check_size("vocab", self.vocab, 1)
        _check_size("embed", self.embed, 0)
        if not self.hidden or len(self.hidden) != len(self.gate_hidden):
            raise UserError(
                f"hidden {self.hidden} and gate_hidden {self.gate_hidden} must be non-empty and equally long",
                "give one hidden and one gate_hidden size per layer",
            )
        for n in self.hidden + self.gate_hidden:
            _check_size("hidden/gate_hidden", n, 0)
        for name in ("dropout_gate", "dropout_embed", "dropout_words"):
            _check_dropout(name, getattr(self, name))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"], d["gate_hidden"] = list(self.hidden), list(self.gate_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LMConfig":
        return cls(**d)


@dataclass(frozen=True)
class StackedLMConfig:
    """Shape and regularisation of a :class:`StackedLSTMLanguageModel`."""

    vocab: int
    embed: int
    hidden: int
    layers: int
    dropout: float = 0.65  # embedding output, between layers, before the decoder
    dropout_words: float = 0.1

    def __post_init__(self):
        _check_size("vocab", self.vocab, 1)
        _check_size("embed", self.embed, 1)
        _check_size("hidden", self.hidden, 1)
        _check_size("layers", self.layers, 1)
        _check_dropout("dropout", self.dropout)
        _check_dropout("dropout_words", self.dropout_words)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StackedLMConfig":
        return cls(**d)


def embedded_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Look up ``tokens`` (T, B) -> (T, B, E), dropping whole rows of the matrix in training.

    Dropping a word type everywhere in the batch (not single occurrences) is
    AWD-LSTM's embedded dropout: the model cannot lean on any one word vector.
    """
    weight = embedding.weight
    if training and p > 0:
        keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
        weight = weight * keep
    return F.embedding(tokens, weight)


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout on x (T, B, D) with one mask per sequence, shared over all T steps."""
    if not training or p == 0:
        return x
    keep = x.new_empty(1, x.shape[1], x.shape[2]).bernoulli_(1 - p) / (1 - p)  # (1, B, D)
    return x * keep


class HLSTMLanguageModel(nn.Module):
    """Embedding -> H-LSTM layers -> masked linear decoder."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.dropout_gate = cfg.dropout_gate
        self.dropout_embed = cfg.dropout_embed
        self.dropout_words = cfg.dropout_words
        self.embedding = nn.Embedding(cfg.vocab, cfg.embed)
        inputs = (cfg.embed,) + cfg.hidden[:-1]
        self.layers = nn.ModuleList(
            HLSTMLayer(i, h, g, cfg.dropout_gate) for i, h, g in zip(inputs, cfg.hidden, cfg.gate_hidden)
        )
        self.decoder_w = nn.Parameter(torch.empty(cfg.vocab, cfg.hidden[-1]))
        self.decoder_b = nn.Parameter(torch.empty(cfg.vocab))
        self.register_buffer("mask_decoder_w", torch.ones_like(self.decoder_w))
        self.reset_parameters()

    @property
    def config(self) -> LMConfig:
        """The config of the CURRENT tensor shapes (right after thinning or widening)."""
        return LMConfig(
            vocab=self.embedding.weight.shape[0],
            embed=self.embedding.weight.shape[1],
            hidden=tuple(layer.hidden_size for layer in self.layers),
            gate_hidden=tuple(layer.gate_hidden for layer in self.layers),
            dropout_gate=self.dropout_gate,
            dropout_embed=self.dropout_embed,
            dropout_words=self.dropout_words,
        )

    # ---- structured units (what row/column pruning removes; see sparsity/units.py) -----------
    def unit_keys(self) -> list[UnitKey]:
        """``embed, gate.0, hidden.0, gate.1, ...`` in input-to-output order."""
        layers = [hlstm_unit_keys(f"gate.{l}", f"hidden.{l}") for l in range(len(self.layers))]
        return [UnitKey("embed")] + [k for keys in layers for k in keys]

    def unit_links(self) -> list[Link]:
        links = [Link("embedding.weight", ("embed", (1,)), None)]  # (V, E): vocab rows are no unit
        for l in range(len(self.layers)):
            prev = "embed" if l == 0 else f"hidden.{l - 1}"
            links += hlstm_links(f"layers.{l}.", prev, f"gate.{l}", f"hidden.{l}")
        last = f"hidden.{len(self.layers) - 1}"
        return links + [Link("decoder_w", None, (last, (1,))), Link("decoder_b", None, None)]  # (V, H), (V,)

    def widths(self) -> dict[str, int]:
        """Physical width per unit key (gate keys: neurons per gate)."""
        cfg = self.config
        return {"embed": cfg.embed, **{f"gate.{l}": g for l, g in enumerate(cfg.gate_hidden)},
                **{f"hidden.{l}": h for l, h in enumerate(cfg.hidden)}}

    def resized(self, widths: dict[str, int]) -> LMConfig:
        """This model's config with the widths of ``widths`` (unit key -> width) instead."""
        L = len(self.layers)
        return dataclasses.replace(self.config, embed=widths["embed"],
                                   hidden=tuple(widths[f"hidden.{l}"] for l in range(L)),
                                   gate_hidden=tuple(widths[f"gate.{l}"] for l in range(L)))

    @torch.no_grad()
    def init_new_units(self, key: str, index: Tensor, generator: torch.Generator) -> None:
        """A live start for grown units: random biases for gate/hidden units, and a random
        embedding column for an embedding dimension, drawn like a fresh model's. An all-zero
        embedding column feeds a zero input to its zero ``u_x`` column: both gradients are zero
        and the dimension would never learn."""
        if key == "embed":
            col = torch.rand(self.embedding.weight.shape[0], len(index), generator=generator)
            self.embedding.weight[:, index] = ((col * 2 - 1) * EMBED_INIT).to(self.embedding.weight)
        else:
            kind, l = key.split(".")
            init_new_hlstm_units(self.layers[int(l)], kind, index, generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """AWD-style ±0.1 embedding, per-layer H-LSTM init, ±1/sqrt(H) decoder, zero decoder bias."""
        self.embedding.weight.uniform_(-EMBED_INIT, EMBED_INIT, generator=generator)
        for layer in self.layers:
            layer.reset_parameters(generator)
        bound = 1.0 / math.sqrt(max(self.decoder_w.shape[1], 1))
        self.decoder_w.uniform_(-bound, bound, generator=generator).mul_(self.mask_decoder_w)
        self.decoder_b.zero_()

    def init_state(self, batch: int) -> list[tuple[Tensor, Tensor]]:
        """Zero (h, c) per layer, each (B, H_l), on the model's device and dtype."""
        zeros = [self.decoder_w.new_zeros(batch, layer.hidden_size) for layer in self.layers]
        return [(z, z.clone()) for z in zeros]

    def forward(self, tokens: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """tokens (T, B) long -> logits (T, B, V), new state (list of (h, c) per layer)."""
        x = embedded_dropout(self.embedding, tokens, self.dropout_words, self.training)  # (T, B, E)
        x = locked_dropout(x, self.dropout_embed, self.training)
        new_state = []
        for l, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[l])  # (T, B, H_l)
            new_state.append(s)
            x = locked_dropout(x, self.dropout_embed, self.training)
        logits = F.linear(x, effective(self, "decoder_w"), self.decoder_b)  # (T, B, V)
        return logits, new_state


class StackedLSTMLanguageModel(nn.Module):
    """Baseline: Embedding -> stock nn.LSTM (fastest stock kernels) -> nn.Linear."""

    def __init__(self, cfg: StackedLMConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab, cfg.embed)
        between = cfg.dropout if cfg.layers > 1 else 0.0  # nn.LSTM warns on dropout with 1 layer
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, dropout=between)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab)
        self.reset_parameters()

    @property
    def config(self) -> StackedLMConfig:
        return self.cfg

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """±0.1 embedding, nn.LSTM's ±1/sqrt(H), ±1/sqrt(H) decoder weight, zero decoder bias."""
        self.embedding.weight.uniform_(-EMBED_INIT, EMBED_INIT, generator=generator)
        bound = 1.0 / math.sqrt(self.cfg.hidden)
        for p in self.lstm.parameters():
            p.uniform_(-bound, bound, generator=generator)
        self.decoder.weight.uniform_(-bound, bound, generator=generator)
        self.decoder.bias.zero_()

    def init_state(self, batch: int) -> tuple[Tensor, Tensor]:
        """Zero (h, c), each (layers, B, H)."""
        z = self.decoder.weight.new_zeros(self.cfg.layers, batch, self.cfg.hidden)
        return z, z.clone()

    def forward(self, tokens: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple]:
        """tokens (T, B) long -> logits (T, B, V), (h, c) each (layers, B, H)."""
        x = embedded_dropout(self.embedding, tokens, self.cfg.dropout_words, self.training)  # (T, B, E)
        x = locked_dropout(x, self.cfg.dropout, self.training)
        x, state = self.lstm(x, state)  # (T, B, H)
        x = locked_dropout(x, self.cfg.dropout, self.training)
        return self.decoder(x), state

    def recurrent(self, tokens: Tensor) -> Tensor:
        """Embedding + LSTM only (inference): the part timed apart from the vocabulary decoder."""
        return self.lstm(self.embedding(tokens))[0]  # (T, B, H)
