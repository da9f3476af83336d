"""Benchmark: the compiled H-LSTM time loop against the torch-op loop and nn.LSTM.

    python benchmarks/native_loop.py [--sparsity 0.98] [--width 256] [--embed 128] [--rounds 21]
                                     [--threads 1 2] [--out FILE]

The shape of the default PTB final model's recurrent part (one H-LSTM layer, H = G = 256,
embedding 128, batch 16 x 70 steps) with random weights at ``--sparsity``, against the
2 x 256 nn.LSTM baseline's recurrent part (embedding and LSTM layers, no decoder). Every
variant starts from the same tokens; medians of interleaved rounds, per thread count.
``--width 1500 --embed 400 --sparsity 0 --dense-only`` is the paper's PTB shape: the dense
H-LSTM against a 2 x 1500 nn.LSTM per multiply-add (``gmacs_per_s`` and ``fraction_of_bound``).

Each variant is also set against a bound computed from its own work
(:mod:`symbiotic.hardware.bound`): its multiply-adds at this CPU's measured peak GEMM rate
plus its gate nonlinearities at the measured vector rate. ``fraction_of_bound`` = bound /
measured median (1 = at the bound).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.bound import bound_s, rates, recurrent_work
from symbiotic.hardware.measure import fingerprint, resolve_device
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel
from symbiotic.runtime import native
from symbiotic.runtime.formats import every
from symbiotic.runtime.lm import export
from symbiotic.sparsity.masks import random_masks
from symbiotic.tasks.ptb import PTBTask

VOCAB, T, B = 10000, 70, 16


def _native_call(model, tokens):
    layer = model.layers[0]

    def call():
        return layer.native(F.embedding(tokens, model.embedding))

    return call


def _torch_call(model, tokens):
    """The export's recurrent part through the torch loop (the exports run the native one by default)."""
    def call():
        saved = os.environ.get("SYMBIOTIC_RUNTIME")
        os.environ["SYMBIOTIC_RUNTIME"] = "torch"
        try:
            return model.recurrent(tokens)
        finally:
            if saved is None:
                del os.environ["SYMBIOTIC_RUNTIME"]
            else:
                os.environ["SYMBIOTIC_RUNTIME"] = saved

    return call


def models(sparsity: float, width: int, embed: int) -> dict:
    torch.manual_seed(0)
    baseline = StackedLSTMLanguageModel(StackedLMConfig(vocab=VOCAB, embed=embed, hidden=width, layers=2)).eval()
    hlstm = HLSTMLanguageModel(LMConfig(vocab=VOCAB, embed=embed, hidden=(width,), gate_hidden=(width,)))
    random_masks(hlstm.layers, 1.0 - sparsity, torch.Generator().manual_seed(0))
    return {"baseline": baseline, "csr": export(hlstm, every("csr"), thinned=False),
            "dense": export(hlstm, every("dense"), thinned=False)}


def variants(built: dict, tokens, width: int) -> dict[str, tuple]:
    """name -> (the call timed, its work: multiply-adds and nonlinearity elements)."""
    csr, dense = built["csr"], built["dense"]
    return {f"nn.LSTM 2x{width}": (PTBTask.latency_call(built["baseline"], (tokens,), "recurrent"),
                                   recurrent_work(built["baseline"], T, B)),
            "torch loop, CSR": (_torch_call(csr, tokens), recurrent_work(csr, T, B)),
            "native loop, CSR": (_native_call(csr, tokens), recurrent_work(csr, T, B)),
            "native loop, dense": (_native_call(dense, tokens), recurrent_work(dense, T, B))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsity", type=float, default=0.98)
    p.add_argument("--width", type=int, default=256, help="H = G of the H-LSTM, H of the 2-layer nn.LSTM")
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--dense-only", action="store_true", help="nn.LSTM and the dense native loop only (e.g. at 1500)")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    device = resolve_device("cpu")
    tokens = torch.randint(0, VOCAB, (T, B), generator=torch.Generator().manual_seed(0))
    todo = variants(models(args.sparsity, args.width, args.embed), tokens, args.width)
    if args.dense_only:
        todo = {name: v for name, v in todo.items() if "CSR" not in name}
    rows, peaks = [], {}
    for threads in args.threads:
        peaks[threads] = rate = rates(device, threads)
        timing = side_by_side({name: v[0] for name, v in todo.items()}, device, threads, args.rounds,
                              min_run_time=0.05)
        base = timing[f"nn.LSTM 2x{args.width}"]["median_s"]
        for name, t in timing.items():
            work = todo[name][1]
            macs, bound = work[0], bound_s(work, rate)
            rows.append({"threads": threads, "variant": name, "median_ms": round(t["median_s"] * 1e3, 3),
                         "min_ms": round(t["min_s"] * 1e3, 3), "max_ms": round(t["max_s"] * 1e3, 3),
                         "speedup_vs_lstm": round(base / t["median_s"], 2), "macs": macs,
                         "gmacs_per_s": round(macs / t["median_s"] / 1e9, 2),
                         "bound_ms": round(bound * 1e3, 3), "fraction_of_bound": round(bound / t["median_s"], 3)})
            print(json.dumps(rows[-1]), flush=True)
    doc = {"cpu": fingerprint(device, max(args.threads))["cpu_model"], "sparsity": args.sparsity,
           "shape": {"T": T, "B": B, "H": args.width, "G": args.width, "embed": args.embed}, "rounds": args.rounds,
           "rates": {str(k): {n: round(v / 1e9, 2) for n, v in r.items()} for k, r in peaks.items()},  # 1e9 per second
           "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
