"""Benchmark: the compiled H-LSTM time loop against today's torch-op loop and nn.LSTM.

    python benchmarks/native_loop.py [--sparsity 0.98] [--rounds 21] [--threads 1 2] [--out FILE]

The shape of the default PTB final model's recurrent part (one H-LSTM layer, H = G = 256,
embedding 128, batch 16 x 70 steps) with random weights at ``--sparsity``, against the
2 x 256 nn.LSTM baseline's recurrent part (embedding and LSTM layers, no decoder). Every
variant starts from the same tokens; medians of interleaved rounds, per thread count.

Each variant is also set against a bound computed from its own work: its multiply-adds (the
nonzeros of its matrices x batch x steps, nothing for the zeros CSR skips) at this CPU's peak
rate, measured as the fastest of three square float32 GEMMs, plus its gate nonlinearities
(five exp-based functions per state element and step) at the measured rate of
``torch.sigmoid`` over a cache-resident tensor on one core, times the threads. ``fraction_of_bound`` = bound / measured median (1 = at the bound).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.measure import fingerprint, measure, resolve_device
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel
from symbiotic.runtime import native
from symbiotic.runtime.formats import MATRICES, every
from symbiotic.runtime.lm import export
from symbiotic.sparsity.masks import random_masks
from symbiotic.tasks.ptb import PTBTask

VOCAB, EMBED, WIDTH, T, B = 10000, 128, 256, 70, 16


def _native_call(model, tokens):
    layer = model.layers[0]

    def call():
        x = F.embedding(tokens, model.embedding)
        return native.hlstm_loop(layer.input_half(x), layer.u_h, layer.w, layer.w_b)

    return call


def _macs_per_column(t) -> int:
    """Multiply-adds per batch column: a CSR product does its nonzeros, a dense one every entry."""
    return int(t._nnz()) if t.layout == torch.sparse_csr else t.numel()


def models(sparsity: float) -> dict:
    torch.manual_seed(0)
    baseline = StackedLSTMLanguageModel(StackedLMConfig(vocab=VOCAB, embed=EMBED, hidden=WIDTH, layers=2)).eval()
    hlstm = HLSTMLanguageModel(LMConfig(vocab=VOCAB, embed=EMBED, hidden=(WIDTH,), gate_hidden=(WIDTH,)))
    random_masks(hlstm.layers, 1.0 - sparsity, torch.Generator().manual_seed(0))
    return {"baseline": baseline, "csr": export(hlstm, every("csr"), thinned=False),
            "dense": export(hlstm, every("dense"), thinned=False)}


def variants(built: dict, tokens) -> dict[str, tuple]:
    """name -> (the call timed, its multiply-adds, its nonlinearity elements)."""
    def hlstm_work(model) -> tuple[int, int]:
        layer = model.layers[0]
        return T * B * sum(_macs_per_column(getattr(layer, m)) for m in MATRICES), 5 * T * B * WIDTH

    lstm_work = (sum(T * B * 4 * WIDTH * (i + WIDTH) for i in (EMBED, WIDTH)), 2 * 5 * T * B * WIDTH)
    csr, dense = built["csr"], built["dense"]
    return {"nn.LSTM 2x256": (PTBTask.latency_call(built["baseline"], (tokens,), "recurrent"), *lstm_work),
            "torch loop, CSR": (PTBTask.latency_call(csr, (tokens,), "recurrent"), *hlstm_work(csr)),
            "native loop, CSR": (_native_call(csr, tokens), *hlstm_work(csr)),
            "native loop, dense": (_native_call(dense, tokens), *hlstm_work(dense))}


def rates(device, threads: int) -> dict[str, float]:
    """Peak multiply-adds/s (the fastest of three square GEMMs) and sigmoid elements/s on a
    cache-resident tensor (what the loop's state is), on ``threads``."""
    macs = []
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        macs.append(n ** 3 / measure(lambda: torch.mm(a, b), device=device, threads=threads, min_run_time=0.2).median_s)
    # One core's rate times the threads: the ideal scaling (a small tensor does not split well).
    v, out = torch.randn(1 << 17), torch.empty(1 << 17)
    elem = measure(lambda: torch.sigmoid(v, out=out), device=device, threads=1, min_run_time=0.2).median_s
    return {"macs_per_s": max(macs), "elems_per_s": threads * v.numel() / elem}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsity", type=float, default=0.98)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    device = resolve_device("cpu")
    tokens = torch.randint(0, VOCAB, (T, B), generator=torch.Generator().manual_seed(0))
    todo = variants(models(args.sparsity), tokens)
    rows, peaks = [], {}
    for threads in args.threads:
        peaks[threads] = rate = rates(device, threads)
        timing = side_by_side({name: v[0] for name, v in todo.items()}, device, threads, args.rounds,
                              min_run_time=0.05)
        base = timing["nn.LSTM 2x256"]["median_s"]
        for name, t in timing.items():
            _, macs, elems = todo[name]
            bound = macs / rate["macs_per_s"] + elems / rate["elems_per_s"]
            rows.append({"threads": threads, "variant": name, "median_ms": round(t["median_s"] * 1e3, 3),
                         "min_ms": round(t["min_s"] * 1e3, 3), "max_ms": round(t["max_s"] * 1e3, 3),
                         "speedup_vs_lstm": round(base / t["median_s"], 2), "macs": macs,
                         "bound_ms": round(bound * 1e3, 3), "fraction_of_bound": round(bound / t["median_s"], 3)})
            print(json.dumps(rows[-1]), flush=True)
    doc = {"cpu": fingerprint(device, max(args.threads))["cpu_model"], "sparsity": args.sparsity,
           "shape": {"T": T, "B": B, "H": WIDTH, "G": WIDTH, "embed": EMBED}, "rounds": args.rounds,
           "rates": {str(k): {n: round(v / 1e9, 2) for n, v in r.items()} for k, r in peaks.items()},  # 1e9 per second
           "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
