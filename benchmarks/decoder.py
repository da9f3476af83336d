"""Benchmark: the exported language model's decoder product, dense against MKL's CSR and the native CSR.

    python benchmarks/decoder.py [--export models/ptb/final_export.pt] [--rounds 15] [--threads 1 2] [--out FILE]
    python benchmarks/decoder.py --random 0.195 --hidden 164     # no pipeline run needed

The decoder (V x H, V = 10,000 words) is applied to every token of the evaluate stage's batch
(T*B = 70*16 = 1120 columns), as ``runtime.layers.decode`` does. Three products of the same
matrix, side by side (interleaved rounds, median and range):
  dense:      F.linear on the matrix made dense (what a dense decoder costs at this width);
  mkl_csr:    torch.addmm on the CSR matrix (MKL's sparse BLAS; the torch runtime's path);
  native_csr: runtime.native.csr_mm (the native runtime's path).
The first two allocate their output per call, as the model does; csr_mm reuses its own once the
caller has dropped it. ``dense_out_reused`` (torch.addmm into one preallocated output) is the
dense product without the fresh pages, to tell the two gains apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from symbiotic import io
from symbiotic.flow.latency import side_by_side
from symbiotic.hardware.measure import fingerprint, resolve_device
from symbiotic.runtime import native
from symbiotic.runtime.lm import from_state
from symbiotic.runtime.packing import to_csr

from _results import emit

TOKENS = 70 * 16  # the evaluate stage's inference shape (steps x batch)


def decoder(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(CSR weight, bias, where it came from)."""
    if args.random is not None:
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(10000, args.hidden, generator=gen) * (torch.rand(10000, args.hidden, generator=gen) < args.random)
        return to_csr(w), torch.zeros(10000), f"random, density {args.random}"
    exported = from_state(io.load_tensors(args.export))
    w = exported.decoder_w if exported.decoder_w.layout == torch.sparse_csr else to_csr(exported.decoder_w)
    return w, exported.decoder_b, str(args.export)


def calls(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> dict:
    dense, bias = w.to_dense(), b.unsqueeze(1)
    xt = x.t().contiguous()  # (H, T*B), as decode() makes it
    buffer = torch.empty(x.shape[0], dense.shape[0])
    return {"dense": lambda: F.linear(x, dense, b),
            "dense_out_reused": lambda: torch.addmm(b, x, dense.t(), out=buffer),
            "mkl_csr": lambda: torch.addmm(bias, w, xt),
            "native_csr": lambda: native.csr_mm(w, xt, b)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--export", type=Path, default=Path("models/ptb/final_export.pt"))
    p.add_argument("--random", type=float, default=None, metavar="DENSITY", help="a random decoder instead")
    p.add_argument("--hidden", type=int, default=164, help="its width, with --random")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    device = resolve_device("cpu")
    w, b, source = decoder(args)
    V, H = w.shape
    x = torch.randn(TOKENS, H, generator=torch.Generator().manual_seed(1))
    todo = calls(w, b, x)
    ref = todo["dense"]()
    for name in ("dense_out_reused", "mkl_csr", "native_csr"):  # the same numbers, or the timing means nothing
        out = todo[name]()
        err = ((out if name.startswith("dense") else out.t()) - ref).abs().max().item()
        assert err < 1e-3, f"{name} differs from the dense product by {err}"
    nnz = w.values().numel()
    rows = {}
    for threads in args.threads:
        timing = side_by_side(todo, device, threads, args.rounds, min_run_time=0.2)
        rows[str(threads)] = {name: {"median_ms": round(t["median_s"] * 1e3, 2), "min_ms": round(t["min_s"] * 1e3, 2),
                                     "max_ms": round(t["max_s"] * 1e3, 2),
                                     "gmacs_per_s": round((V * H if name.startswith("dense") else nnz) * TOKENS
                                                          / t["median_s"] / 1e9, 1),
                                     "speedup_vs_dense": round(timing["dense"]["median_s"] / t["median_s"], 2)}
                              for name, t in timing.items()}
    emit({"cpu": fingerprint(device, max(args.threads))["cpu_model"], "decoder": source,
          "shape": {"V": V, "H": H, "tokens": TOKENS}, "density": round(nnz / (V * H), 4), "rounds": args.rounds,
          "threads": rows}, args.out)


if __name__ == "__main__":
    main()
