"""Latency profiles of what ships: the LHE sweep and the dense/sparse crossover.

What is timed is the exported model the flow deploys (``symbiotic.runtime``), built by the
task's ``latency_target`` with every layer at the swept widths (both directions for AN4),
its recurrent part at the task's inference shape, through the same time loop as the
deployed model: the native one on the CPU (``runtime.native``), torch's on CUDA. An earlier
version timed the training layer's forward; a generic ``W @ X`` microbenchmark shows a much
weaker hysteresis effect on CPUs and would put the LHPs in the wrong places.

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

from symbiotic.config import build, ranged
from symbiotic.errors import UserError
from symbiotic.hardware import lhp
from symbiotic.hardware.measure import measure
from symbiotic.progress import bar
from symbiotic.runtime import native
from symbiotic.runtime.formats import MATRICES, OUTPUT, every
from symbiotic.sparsity.masks import random_masks

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
    """The layers' (input, hidden, gate_hidden) with one dimension swept, the others at base."""
    return {**base, name: size}


def _timed(target, dims: dict[str, int], shape: TaskShape, device: torch.device, gen: torch.Generator,
           sparsity: float = 0.0, csr: str | None = None, part: str = "recurrent"):
    """The call the profile times: ``target``'s exported model at ``dims`` (every layer) on
    random inputs of the inference shape, its ``part`` ("recurrent" or "full"), every product
    dense but ``csr`` (a layer product or ``OUTPUT``, the decoder). With ``sparsity`` > 0, random
    masks of that sparsity on every weight first. Exported at its own widths (``thinned=False``):
    random masks must not shrink what is being timed."""
    model = target.model(dims)
    if sparsity > 0:
        random_masks(model, 1.0 - sparsity, gen)
    formats = {**every("dense"), **({csr: "csr"} if csr in MATRICES else {})}
    exported = target.export(model, formats, False, "csr" if csr == OUTPUT else "dense").to(device)
    inputs = tuple(t.to(device) for t in target.inputs(shape.batch, shape.seq_len, gen))
    return target.call(exported, inputs, part)


def sweep(target, shape: TaskShape, cfg: ProfileConfig, device: torch.device, threads: int) -> list[dict]:
    """Median latency of every grid point in every pass (randomized, interleaved order): the
    exported model, dense, as the flow's dense path ships it."""
    points = [(name, size) for name in shape.dimensions() for size in shape.grid(name).points()]
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for p in range(cfg.passes):
        order = points[:]
        rng.shuffle(order)
        for name, size in bar(order, desc=f"profile pass {p + 1}/{cfg.passes}"):
            fn = _timed(target, layer_dims(target.base, name, size), shape, device, gen)
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

def sparse_sweep(target, shape: TaskShape, cfg: ProfileConfig, device: torch.device, threads: int) -> list[dict]:
    """Dense against CSR for each product, in the exported model itself, over the sparsity grid.

    At each sparsity the model (base widths, every weight randomly masked to that sparsity)
    runs all-dense and with one product in CSR, the others dense; the ratio is that product's
    gain from CSR, measured in the time loop that ships (the native one on the CPU), not in an
    isolated sparse-dense product. The layer products are compared on the recurrent part, the
    output product (``OUTPUT``, the decoder) on the whole model. Every case is measured once
    per pass in a fresh random order and the medians over passes are kept: a single
    measurement per case moved the crossover by a whole grid step between runs on this
    machine, and the crossover decides the flow's path.
    """
    part_of = {**dict.fromkeys(MATRICES, "recurrent"), OUTPUT: "full"}
    cases = {}
    for k, sparsity in enumerate(cfg.sparsities):
        for csr, part in [(None, "recurrent"), (None, "full"), *part_of.items()]:
            gen = torch.Generator().manual_seed(cfg.seed + 1 + k)  # the same weights in every format
            cases[(csr, part, sparsity)] = _timed(target, target.base, shape, device, gen, sparsity, csr, part)
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
    for name, part in part_of.items():
        for sparsity in cfg.sparsities:
            dense, csr = times[(None, part, sparsity)], times[(name, part, sparsity)]
            d, c = statistics.median(dense), statistics.median(csr)
            rows.append({"product": name, "part": part, "sparsity": sparsity, "dense_s": d, "sparse_s": c,
                         "dense_range_s": max(dense) - min(dense), "sparse_range_s": max(csr) - min(csr),
                         "passes": len(dense), "speedup": d / c})
    return rows


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


def runtime_name(device: torch.device) -> str:
    """Which time loop the profile timed: 'native' (compiled) or 'torch'."""
    return "native" if native.runs_on(device) else "torch"


# ---- the stage's work --------------------------------------------------------------------

def profile_task(task: str, device_name: str, cfg: ProfileConfig, shape: TaskShape, target,
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
    rows = sweep(target, shape, cfg, device, threads)
    sparse_rows = sparse_sweep(target, shape, cfg, device, threads)
    summary = analyse(rows, cfg)
    fp = fingerprint(device, threads)
    meta = {"task": task, "device": device_name, "threads": threads, "batch": shape.batch,
            "seq_len": shape.seq_len, "base": target.base, "runtime": runtime_name(device), "tolerance": cfg.tolerance, "method": cfg.method, "passes": cfg.passes,
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
