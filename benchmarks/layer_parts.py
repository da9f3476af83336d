"""Benchmark: where the time of one exported DS2 (bidirectional) layer goes, part by part.

    python benchmarks/layer_parts.py [--export models/an4/final_export.pt] [--threads 1] [--rounds 7] [--out FILE]

The first recurrent layer of the exported AN4 model, on random frames of the evaluate shape
(batch 16, 252 frames, 126 steps after the convolutions): the whole layer forward against its
parts, each timed alone with the one measuring module in interleaved rounds (medians): the input
product (CSR or dense u_x), the input product plus the gather that reverses the backward rows in
time (what the native loop is given), the native loop itself, and the CSR input product on a
contiguous operand (the export passes a transposed view). The rest of the forward is the output
reversal and sum of the directions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from symbiotic import io
from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.measure import resolve_device
from symbiotic.runtime import native
from symbiotic.runtime.ds2 import from_state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--export", type=Path, default=Path("models/an4/final_export.pt"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    model = from_state(io.load_tensors(args.export))
    gen = torch.Generator().manual_seed(0)
    frames = 252
    x = torch.randn(frames, 16, model.n_features, generator=gen)
    h, lengths = model.frontend(x, torch.full((16,), frames))
    layer, T = model.layers[0], h.shape[0]
    pre = layer._native_rows(h, lengths)
    xt = h.reshape(T * 16, -1).t()
    xc = xt.contiguous()
    calls = {"layer forward": lambda: layer(h, lengths),
             "input product": lambda: layer.input_rows(h),
             "input product + backward gather": lambda: layer._native_rows(h, lengths),
             "native loop": lambda: native.hlstm_rows(pre, T, layer.u_h, layer.w, layer.w_b),
             "input product, contiguous operand": lambda: torch.addmm(layer.u_b.unsqueeze(1), layer.u_x, xc)}
    timing = side_by_side(calls, resolve_device("cpu"), args.threads, args.rounds, min_run_time=0.1)
    doc = {"export": str(args.export), "threads": args.threads, "steps": T, "formats": layer.formats,
           "ms": {k: round(v["median_s"] * 1e3, 3) for k, v in timing.items()},
           "range_ms": {k: [round(v["min_s"] * 1e3, 3), round(v["max_s"] * 1e3, 3)] for k, v in timing.items()}}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
