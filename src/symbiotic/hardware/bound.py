"""How fast a recurrent part could run on this machine: a bound from the model's own work.

The bound is the model's multiply-adds at this CPU's measured peak rate plus its gate
nonlinearities at the measured vector rate. Multiply-adds count the nonzeros of each CSR matrix
and every entry of each dense one, times the columns it multiplies (batch x steps): the zeros a
CSR kernel skips cost nothing, the zeros a dense GEMM multiplies cost as much as any entry.
Nonlinearities count five exp-based functions (three sigmoids, two tanh) per state element
per step and direction. Element-wise adds, BatchNorm between AN4's layers and the embedding
lookup are left out: the bound is optimistic, never pessimistic.
"""

from __future__ import annotations

import torch
from torch import nn

from symbiotic.hardware.measure import measure
from symbiotic.runtime.formats import MATRICES
from symbiotic.runtime.layers import InferenceLayer

__all__ = ["rates", "recurrent_work", "bound_s"]

NONLINEAR_PER_STATE = 5  # sigmoid of f, i, o; tanh of g and of c


def rates(device, threads: int) -> dict[str, float]:
    """Peak multiply-adds/s (the fastest of three square float32 GEMMs) and sigmoid elements/s
    on a cache-resident tensor (what the loop's state is) on ``threads``: one core's rate times
    the threads, the ideal scaling (a small tensor does not split well)."""
    macs = []
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        macs.append(n ** 3 / measure(lambda: torch.mm(a, b), device=device, threads=threads,
                                     min_run_time=0.2).median_s)
    v, out = torch.randn(1 << 17), torch.empty(1 << 17)
    elem = measure(lambda: torch.sigmoid(v, out=out), device=device, threads=1, min_run_time=0.2).median_s
    return {"macs_per_s": max(macs), "elems_per_s": threads * v.numel() / elem}


def _macs_per_column(t: torch.Tensor) -> int:
    return int(t._nnz()) if t.layout == torch.sparse_csr else t.numel()


def recurrent_work(model: nn.Module, steps: int, batch: int) -> tuple[int, int]:
    """(multiply-adds, nonlinearity elements) of ``model``'s recurrent layers over ``steps`` x
    ``batch``: exported H-LSTM layers (``InferenceLayer``, any format, any directions) and
    stock ``nn.LSTM`` modules (the baselines)."""
    macs = elems = 0
    for m in model.modules():
        if isinstance(m, InferenceLayer):
            macs += sum(_macs_per_column(getattr(m, name)) for name in MATRICES) * steps * batch
            elems += NONLINEAR_PER_STATE * m.directions * m.hidden_size * steps * batch
        elif isinstance(m, nn.LSTM):
            D = 2 if m.bidirectional else 1
            for layer in range(m.num_layers):
                inputs = m.input_size if layer == 0 else m.hidden_size * D
                macs += D * 4 * m.hidden_size * (inputs + m.hidden_size) * steps * batch
            elems += NONLINEAR_PER_STATE * D * m.num_layers * m.hidden_size * steps * batch
    return macs, elems


def bound_s(work: tuple[int, int], rate: dict[str, float]) -> float:
    """Seconds the work takes at the measured rates."""
    macs, elems = work
    return macs / rate["macs_per_s"] + elems / rate["elems_per_s"]
