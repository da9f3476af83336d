"""Latency profiles of the real inference path: the LHE sweep and the dense/sparse crossover.

What is timed is the model's own code: an :class:`HLSTMLayer` forward at the
task's inference shape, in the ``x @ W.T`` layout the model uses. A generic
``W @ X`` microbenchmark shows a much weaker hysteresis effect on CPUs and would
put the LHPs in the wrong places.

Noise on a shared machine invents hysteresis that does not reproduce when sizes
are swept in order, so every pass visits all grid points in a fresh random
order (seeded), and LHP detection (``lhp.py``) only calls a point dominated
when a larger one is faster in every pass.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from symbiotic.config import build, ranged
from symbiotic.errors import UserError
from symbiotic.hardware import lhp
from symbiotic.hardware.measure import measure
from symbiotic.models.hlstm import GATES, HLSTMLayer
from symbiotic.progress import bar

DIMENSIONS = ("hidden", "gate_hidden", "input")


@dataclass(frozen=True)
class Grid:
    """Coarse steps over the whole range, fine steps where the flow will land."""

    stop: int = ranged(lo=1)
    coarse: int = ranged(lo=1)
    fine_from: int = ranged(lo=1)
    fine_to: int = ranged(lo=1)
    fine: int = ranged(1, lo=1)

    def points(self) -> list[int]:
        coarse = range(self.coarse, self.stop + 1, self.coarse)
        fine = range(self.fine_from, min(self.fine_to, self.stop) + 1, self.fine)
        return sorted(set(coarse) | set(fine))


@dataclass(frozen=True)
class ProfileConfig:
    threads: int | None = ranged(None, lo=1, hi=1024)  # null: every core this process may use
    passes: int = ranged(3, lo=1, hi=50)
    tolerance: float = ranged(0.03, lo=0.0, hi=0.5)
    method: str = ranged("all_passes", choices=("all_passes", "mann_whitney"))
    alpha: float = ranged(0.01, lo=1e-6, hi=0.5)
    min_run_time: float = ranged(0.05, lo=0.001, hi=10.0)
    min_runs: int = ranged(3, lo=1, hi=1000)
    warmup: int = ranged(1, lo=0, hi=100)
    seed: int = ranged(0, lo=0)
    sparsities: tuple[float, ...] = ranged((0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), lo=0.0, hi=0.999)


@dataclass(frozen=True)
class TaskShape:
    """The task's inference shape and the grid per prunable dimension."""

    batch: int = ranged(16, lo=1)
    seq_len: int = ranged(70, lo=1)
    grids: dict = field(default_factory=dict)

    def dimensions(self) -> list[str]:
        """The swept dimensions, in DIMENSIONS order: those with a grid (AN4 does not prune the
        conv features its first layer reads, so it has no ``input`` grid)."""
        unknown = sorted(set(self.grids) - set(DIMENSIONS))
        if unknown:
            raise UserError(f"profile grid '{unknown[0]}' is not a dimension",
                            f"name grids after {', '.join(DIMENSIONS)}")
        if not self.grids:
            raise UserError("the profile has no grids", "add profile.<task>.grids (see params.yaml)")
        return [name for name in DIMENSIONS if name in self.grids]

    def grid(self, name: str) -> Grid:
        if name not in self.grids:
            raise UserError(f"profile grid for '{name}' is missing",
                            f"add profile.<task>.grids.{name} (stop, coarse, fine_from, fine_to, fine)")
        return build(Grid, self.grids[name], f"grids.{name}")


def layer_dims(base: dict[str, int], name: str, size: int) -> dict[str, int]:
    """The layer's (input, hidden, gate_hidden) with one dimension swept, the others at base."""
    return {**base, name: size}


def _layer_fn(dims: dict[str, int], shape: TaskShape, device: torch.device, gen: torch.Generator):
    layer = HLSTMLayer(dims["input"], dims["hidden"], dims["gate_hidden"]).to(device).eval()
    x = torch.randn(shape.seq_len, shape.batch, dims["input"], generator=gen).to(device)
    return lambda: layer(x)


def sweep(base: dict[str, int], shape: TaskShape, cfg: ProfileConfig, device: torch.device,
          threads: int) -> list[dict]:
    """Median latency of every grid point in every pass (randomized, interleaved order)."""
    points = [(name, size) for name in shape.dimensions() for size in shape.grid(name).points()]
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for p in range(cfg.passes):
        order = points[:]
        rng.shuffle(order)
        for name, size in bar(order, desc=f"profile pass {p + 1}/{cfg.passes}"):
            fn = _layer_fn(layer_dims(base, name, size), shape, device, gen)
            t = measure(fn, device=device, threads=threads, warmup=cfg.warmup,
                        min_run_time=cfg.min_run_time, min_runs=cfg.min_runs)
            rows.append({"dimension": name, "size": size, "pass": p, **t.to_dict()})
    return rows


def analyse(rows: list[dict], cfg: ProfileConfig) -> dict:
    """Per dimension: the LHP summary (lhp.summarize) of the per-pass medians."""
    result = {}
    for name in [d for d in DIMENSIONS if any(r["dimension"] == d for r in rows)]:
        mine = [r for r in rows if r["dimension"] == name]
        dims = sorted({r["size"] for r in mine})
        passes = sorted({r["pass"] for r in mine})
        lat = [[next(r["median_s"] for r in mine if r["size"] == d and r["pass"] == p) for d in dims]
               for p in passes]
        result[name] = lhp.summarize(dims, lat, cfg.tolerance, cfg.method, cfg.alpha)
    return result


# ---- dense vs sparse ---------------------------------------------------------------------

def gate_products(base: dict[str, int], shape: TaskShape) -> dict[str, tuple[int, int, int]]:
    """(rows, cols, batch) of each gate product the layer runs at inference."""
    G, H, I = base["gate_hidden"], base["hidden"], base["input"]
    return {
        "u_x": (GATES * G, I, shape.seq_len * shape.batch),  # once per sequence, all steps at once
        "u_h": (GATES * G, H, shape.batch),  # once per step
        "w": (GATES * H, GATES * G, shape.batch),  # once per step; block-diagonal over gates
    }


def _random_matrix(rows: int, cols: int, sparsity: float, gen: torch.Generator, block: bool):
    weight = torch.randn(rows, cols, generator=gen)
    if block:  # the four W_k sit on the diagonal of one (4H, 4G) matrix
        r, c = rows // GATES, cols // GATES
        keep = torch.block_diag(*[torch.ones(r, c)] * GATES)
        weight = weight * keep
    active = weight.ne(0)
    scores = torch.rand(rows, cols, generator=gen).masked_fill(~active, 2.0)
    n_drop = int(round(sparsity * int(active.sum())))
    drop = scores.flatten().argsort()[:n_drop]
    weight.view(-1)[drop] = 0.0
    return weight


def sparse_sweep(base: dict[str, int], shape: TaskShape, cfg: ProfileConfig,
                 device: torch.device, threads: int) -> list[dict]:
    """Dense (the model's path) vs CSR latency of each gate product over the sparsity grid.

    Dense ``u_x``/``u_h`` run as ``F.linear`` (what the layer does); dense ``w`` as the
    layer's batched product. CSR runs ``torch.sparse.mm`` (MKL on CPU, cuSPARSE on GPU)
    on the transposed activations, the layout a CSR kernel wants. Like the LHE sweep,
    every case is measured once per pass in a fresh random order and the medians over
    passes are kept: a single measurement per case moved the crossover by a whole grid
    step between runs on this machine, and the crossover decides the flow's path.
    """
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    cases = {}
    for name, (out_dim, in_dim, batch) in gate_products(base, shape).items():
        for sparsity in cfg.sparsities:
            weight = _random_matrix(out_dim, in_dim, sparsity, gen, block=name == "w").to(device)
            x = torch.randn(batch, in_dim, generator=gen).to(device)
            csr, xt = weight.to_sparse_csr(), x.t().contiguous()
            cases[(name, sparsity, "dense")] = _dense_fn(name, weight, x)
            cases[(name, sparsity, "csr")] = (lambda c=csr, v=xt: torch.sparse.mm(c, v))
    times: dict[tuple, list[float]] = {key: [] for key in cases}
    rng = random.Random(cfg.seed + 1)
    for p in range(cfg.passes):
        order = list(cases)
        rng.shuffle(order)
        for key in bar(order, desc=f"dense vs sparse, pass {p + 1}/{cfg.passes}"):
            t = measure(cases[key], device=device, threads=threads, warmup=cfg.warmup,
                        min_run_time=cfg.min_run_time, min_runs=cfg.min_runs)
            times[key].append(t.median_s)
    rows = []
    for name, (out_dim, in_dim, batch) in gate_products(base, shape).items():
        for sparsity in cfg.sparsities:
            dense, csr = times[(name, sparsity, "dense")], times[(name, sparsity, "csr")]
            d, c = statistics.median(dense), statistics.median(csr)
            rows.append({"product": name, "rows": out_dim, "cols": in_dim, "batch": batch,
                         "sparsity": sparsity, "dense_s": d, "sparse_s": c,
                         "dense_range_s": max(dense) - min(dense), "sparse_range_s": max(csr) - min(csr),
                         "passes": len(dense), "speedup": d / c})
    return rows


def _dense_fn(name: str, weight: torch.Tensor, x: torch.Tensor):
    if name != "w":
        return lambda: F.linear(x, weight)
    # The layer's own path: (4, B, G) x (4, G, H) batched product.
    g4, h4 = weight.shape[1] // GATES, weight.shape[0] // GATES
    w = torch.stack([weight[k * h4:(k + 1) * h4, k * g4:(k + 1) * g4] for k in range(GATES)])
    z = x.view(x.shape[0], GATES, g4).transpose(0, 1)
    w_t = w.transpose(1, 2)
    return lambda: torch.bmm(z, w_t)


def crossover(rows: list[dict]) -> dict[str, float | None]:
    """Per product, the lowest sparsity from which CSR beats dense at every higher grid point."""
    result = {}
    for name in sorted({r["product"] for r in rows}):
        mine = sorted((r for r in rows if r["product"] == name), key=lambda r: r["sparsity"])
        point = None
        for r in reversed(mine):
            if r["speedup"] <= 1.0:
                break
            point = r["sparsity"]
        result[name] = point
    return result


# ---- the stage's work --------------------------------------------------------------------

def profile_task(task: str, device_name: str, cfg: ProfileConfig, shape: TaskShape, base: dict,
                 out, metrics_path) -> dict:
    """Measure, analyse and write one task's profile; returns its summary metrics."""
    import time

    from symbiotic import io
    from symbiotic.hardware.measure import default_threads, fingerprint, fingerprint_key, resolve_device
    from symbiotic.hardware.report import write_profile

    device = resolve_device(device_name)
    for name in shape.dimensions():
        shape.grid(name)  # every grid is validated before the first measurement
    threads = cfg.threads or default_threads()
    start = time.perf_counter()
    rows = sweep(base, shape, cfg, device, threads)
    sparse_rows = sparse_sweep(base, shape, cfg, device, threads)
    summary = analyse(rows, cfg)
    fp = fingerprint(device, threads)
    meta = {"task": task, "device": device_name, "threads": threads, "batch": shape.batch,
            "seq_len": shape.seq_len, "base": base, "tolerance": cfg.tolerance, "method": cfg.method, "passes": cfg.passes,
            "fingerprint": fingerprint_key(fp), "seconds": round(time.perf_counter() - start, 1)}
    doc = write_profile(out, rows, summary, sparse_rows, crossover(sparse_rows), fp, meta)
    result = {"seconds": meta["seconds"], "threads": threads, "points": len(rows) // cfg.passes}
    for name, s in doc["dimensions"].items():
        result[f"{name}_lhps"] = len(s["lhps"])
        result[f"{name}_redundancy"] = round(s["redundancy"], 4)
        result[f"{name}_agreement"] = round(s["agreement"], 4)
        result[f"{name}_split_half_agreement"] = round(s["split_half_agreement"], 4)
    for name, point in doc["sparse_crossover"].items():
        result[f"crossover_{name}"] = point
    io.save_json(result, metrics_path)
    return result
