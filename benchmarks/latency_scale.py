"""Benchmark: how the H-LSTM's latency advantage depends on width (weights random, not trained).

For each width H (the paper's 1500 among them), times side by side, interleaved, with the one
measuring module, the recurrent part (embedding + recurrent layers) at PTB's inference shape
(batch 16, 70 steps) of:
  - the stacked baseline, 2 x H nn.LSTM;
  - an H-LSTM of width H (gate hidden H), thinned dense, at the sparsity the flow reaches;
  - the same H-LSTM with CSR recurrent matrices.
Accuracy is not involved: this isolates where sparse H-LSTM inference can beat nn.LSTM on this CPU.

    python benchmarks/latency_scale.py [--widths 256 1500] [--sparsity 0.9] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json

import torch

from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.measure import default_threads, fingerprint, resolve_device
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel
from symbiotic.runtime.formats import every
from symbiotic.runtime.lm import export
from symbiotic.sparsity.masks import random_masks
from symbiotic.tasks.ptb import PTBTask

VOCAB = 10000


def models_at(width: int, embed: int, sparsity: float, seed: int):
    torch.manual_seed(seed)
    baseline = StackedLSTMLanguageModel(StackedLMConfig(vocab=VOCAB, embed=embed, hidden=width, layers=2)).eval()
    hlstm = HLSTMLanguageModel(LMConfig(vocab=VOCAB, embed=embed, hidden=(width,), gate_hidden=(width,)))
    random_masks(hlstm.layers, 1.0 - sparsity, torch.Generator().manual_seed(seed))
    dense = export(hlstm, every("dense")).eval()
    csr = export(hlstm, every("csr")).eval()
    return {"nn.LSTM 2 layers": baseline, "H-LSTM dense": dense, "H-LSTM CSR": csr}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[256, 1500])
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = resolve_device(args.device)
    threads = default_threads()
    tokens = (torch.randint(0, VOCAB, (70, 16), generator=torch.Generator().manual_seed(0)).to(device),)
    rows = []
    for width in args.widths:
        embed = max(64, round(width * 400 / 1500))  # the paper's embedding/hidden ratio
        models = {k: m.to(device) for k, m in models_at(width, embed, args.sparsity, 0).items()}
        timing = side_by_side({k: PTBTask.latency_call(m, tokens, "recurrent") for k, m in models.items()},
                              device, threads, args.rounds, min_run_time=0.2)
        base = timing["nn.LSTM 2 layers"]["median_s"]
        for name, t in timing.items():
            rows.append({"width": width, "embed": embed, "model": name, "median_ms": round(t["median_s"] * 1e3, 2),
                         "min_ms": round(t["min_s"] * 1e3, 2), "max_ms": round(t["max_s"] * 1e3, 2),
                         "speedup_vs_baseline": round(base / t["median_s"], 2)})
    fp = fingerprint(device, threads)
    print(json.dumps({"device": fp.get("gpu_name") or fp["cpu_model"], "threads": threads,
                      "sparsity": args.sparsity, "rounds": args.rounds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
