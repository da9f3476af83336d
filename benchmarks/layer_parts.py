"""Benchmark: where the time of one exported DS2 (bidirectional) layer goes, part by part.

    python benchmarks/layer_parts.py [--export models/an4/final_export.pt] [--threads 1] [--rounds 7] [--out FILE]

The first recurrent layer of the exported AN4 model, on random frames of the evaluate shape
(batch 16, 252 frames, 126 steps after the convolutions), each call timed with the one measuring
module in interleaved rounds (medians): the layer's forward as it ships (the native layer plus
building the backward order); the native layer alone; the same layer with u_x dense (its input
product one GEMM before the loop instead of CSR rows inside it); and, for reference, torch's
(MKL's) CSR product of u_x on the layer's input, what the export ran before the input product
moved into the loop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from symbiotic import io
from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.measure import resolve_device
from symbiotic.models.ds2 import reverse_padded
from symbiotic.runtime.ds2 import from_state

from _results import emit


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
    order = reverse_padded(torch.arange(T)[:, None].expand(T, 16), lengths)
    weights = {name: getattr(layer, name) for name in ("u_x", "u_h", "w")}
    dense_u_x = type(layer)({**layer.formats, "u_x": "dense"}, {**weights, "u_x": layer.u_x.to_dense()},
                            layer.u_b, layer.w_b)
    calls = {"layer forward": lambda: layer(h, lengths),
             "native layer": lambda: layer.native(h, order),
             "native layer, dense u_x": lambda: dense_u_x.native(h, order),
             "torch CSR input product": lambda: layer.input_rows(h)}
    timing = side_by_side(calls, resolve_device("cpu"), args.threads, args.rounds, min_run_time=0.1)
    doc = {"export": str(args.export), "threads": args.threads, "steps": T, "formats": layer.formats,
           "ms": {k: round(v["median_s"] * 1e3, 3) for k, v in timing.items()},
           "range_ms": {k: [round(v["min_s"] * 1e3, 3), round(v["max_s"] * 1e3, 3)] for k, v in timing.items()}}
    emit(doc, args.out)


if __name__ == "__main__":
    main()
