"""The H-LSTM layer: an LSTM whose four gates each compute through a hidden layer.

For gate k in (f, i, o, g)::

    gate_k = act_k(W_k · ReLU(U_k [x_t, h_{t-1}] + c_k) + b_k)

with one hidden layer of width ``gate_hidden`` (G) per gate. The extra layer
makes each gate a small MLP, which the paper shows buys accuracy per parameter,
and the two-level structure gives row/column pruning more to remove.

Layout (other code relies on the names):
    u_x (4G, I), u_h (4G, H), u_b (4G,)  rows k*G:(k+1)*G belong to gate k
    w   (4, H, G), w_b (4, H)             per-gate output matrices W_k, b_k
and ``mask_u_x``, ``mask_u_h``, ``mask_w`` beside the weights (biases are
never masked). The layer's part of a model's unit table (see
``symbiotic.sparsity.units``) is written here too, beside that layout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symbiotic.sparsity.masks import effective
from symbiotic.sparsity.units import Link, UnitKey

__all__ = ["HLSTMLayer", "GATES", "hlstm_unit_keys", "hlstm_links", "init_new_hlstm_units"]

GATES = 4  # f, i, o, g, in this order

State = tuple[Tensor, Tensor]


class HLSTMLayer(nn.Module):
    """One H-LSTM layer over a whole sequence (time-major)."""

    def __init__(self, input_size: int, hidden_size: int, gate_hidden: int, dropout: float = 0.0):
        super().__init__()
        G, I, H = gate_hidden, input_size, hidden_size
        self.dropout = dropout
        self.u_x = nn.Parameter(torch.empty(GATES * G, I))
        self.u_h = nn.Parameter(torch.empty(GATES * G, H))
        self.u_b = nn.Parameter(torch.empty(GATES * G))
        self.w = nn.Parameter(torch.empty(GATES, H, G))
        self.w_b = nn.Parameter(torch.empty(GATES, H))
        for name in ("u_x", "u_h", "w"):
            self.register_buffer(f"mask_{name}", torch.ones_like(getattr(self, name)))
        self.reset_parameters()

    @property
    def input_size(self) -> int:
        return self.u_x.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w.shape[1]

    @property
    def gate_hidden(self) -> int:
        return self.w.shape[2]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Uniform in ±1/sqrt(fan_in) per matrix, as nn.LSTM does for its one matrix.

        Each of the two levels has its own fan-in (I+H into the gate hidden
        layer, G into the gate), so each gets its own bound. Masks are reapplied
        so a re-initialised sparse layer keeps its invariant.
        """
        b_u = 1.0 / math.sqrt(max(self.input_size + self.hidden_size, 1))
        b_w = 1.0 / math.sqrt(max(self.gate_hidden, 1))
        for p, bound in ((self.u_x, b_u), (self.u_h, b_u), (self.u_b, b_u), (self.w, b_w), (self.w_b, b_w)):
            p.uniform_(-bound, bound, generator=generator)
        for name in ("u_x", "u_h", "w"):
            getattr(self, name).mul_(getattr(self, f"mask_{name}"))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (T, B, I) -> out (T, B, H), (h, c) each (B, H); ``state=None`` means zeros."""
        T, B, _ = x.shape
        H, G = self.hidden_size, self.gate_hidden
        if state is None:
            state = (x.new_zeros(B, H), x.new_zeros(B, H))
        h, c = state
        u_h = effective(self, "u_h")
        w_t = effective(self, "w").transpose(1, 2)  # (4, G, H)
        w_b = self.w_b.unsqueeze(1)  # (4, 1, H): broadcast over the batch
        # The input half does not depend on h, so one big product for all steps
        # replaces T small ones inside the loop.
        pre = F.linear(x, effective(self, "u_x"), self.u_b)  # (T, B, 4G)
        outs = []
        for t in range(T):
            z = torch.relu(pre[t] + F.linear(h, u_h))  # (B, 4G)
            z = F.dropout(z, self.dropout, self.training)
            # All four W_k in one batched product instead of four launches.
            gates = torch.baddbmm(w_b, z.view(B, GATES, G).transpose(0, 1), w_t)  # (4, B, H)
            f, i, o = torch.sigmoid(gates[:3]).unbind(0)  # each (B, H)
            g = torch.tanh(gates[3])
            c = f * c + i * g
            h = o * torch.tanh(c)
            outs.append(h)
        out = torch.stack(outs) if outs else x.new_zeros(0, B, H)  # (T, B, H)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, gate_hidden={self.gate_hidden}, dropout={self.dropout}"


# ---- the layer's units (what row/column pruning removes; see sparsity/units.py) ----------------
def hlstm_unit_keys(gate: str, hidden: str) -> list[UnitKey]:
    """The unit keys of one HLSTMLayer: gate neurons in GATES blocks (k*G + g), then hidden units."""
    return [UnitKey(gate, blocks=GATES), UnitKey(hidden)]


def hlstm_links(prefix: str, input_key: str | None, gate: str, hidden: str) -> list[Link]:
    """The five parameters of one HLSTMLayer at ``prefix``; ``input_key`` None: its input is no unit."""
    return [
        Link(prefix + "u_x", (gate, (0,)), None if input_key is None else (input_key, (1,)), control=True),  # (4G, I)
        Link(prefix + "u_h", (gate, (0,)), (hidden, (1,)), control=True),  # (4G, H)
        Link(prefix + "u_b", (gate, (0,)), None),  # (4G,)
        Link(prefix + "w", (hidden, (1,)), (gate, (0, 2)), control=True),  # (4, H, G): axes 0,2 flatten to k*G+g
        Link(prefix + "w_b", (hidden, (1,)), None),  # (4, H)
    ]


@torch.no_grad()
def init_new_hlstm_units(layer: HLSTMLayer, kind: str, index: Tensor, generator: torch.Generator) -> None:
    """Random biases for grown units of one HLSTMLayer, in a fresh layer's range.

    A brand-new unit with all-zero weights and biases has zero activation and
    so zero gradient everywhere; a bias gives it an activation and its
    outgoing connections a gradient. A gate neuron sits behind a ReLU, so its
    bias must be positive: a negative one outputs zero and the neuron never
    learns. It is drawn from [bound/10, bound] (never zero).
    """
    if kind == "gate":
        bound = 1.0 / (layer.input_size + layer.hidden_size) ** 0.5
        layer.u_b[index] = (0.1 + 0.9 * torch.rand(len(index), generator=generator)) * bound
    elif kind == "hidden":
        bound = 1.0 / layer.gate_hidden ** 0.5
        layer.w_b[:, index] = (torch.rand(GATES, len(index), generator=generator) * 2 - 1) * bound
