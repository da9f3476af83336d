"""Benchmark: the latency hysteresis of the shipped runtime at other widths (the `paper` preset's).

    python benchmarks/profile_widths.py TASK [--preset paper] [--dims hidden gate_hidden]
                                       [--grid 1280:1536:16] [--passes 3] [--out DIR]

The profile stage's own LHE sweep (hardware/profile.py: the task's exported model, every layer
at the swept width, its recurrent part through the runtime that ships, randomized interleaved
passes, LHPs by the same rule) on params.yaml with a preset laid over it, on a grid given here:
the preset's own grids (step 2 over hundreds of widths at 1500) take hours on two cores.
Writes latency.csv, lhp.json and lhe.png into DIR (default benchmarks/results/profile_<preset>_<task>).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from symbiotic import io
from symbiotic.config import build, load_params, section
from symbiotic.hardware.measure import default_threads, fingerprint, resolve_device
from symbiotic.hardware.profile import ProfileConfig, TaskShape, analyse, runtime_name, sweep
from symbiotic.hardware.report import latency_table, plot_profile
from symbiotic.preset import applied
from symbiotic.tasks import task_module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task")
    p.add_argument("--preset", default="paper")
    p.add_argument("--dims", nargs="+", default=["hidden", "gate_hidden"])
    p.add_argument("--grid", default="1280:1536:16", help="start:stop:step, the same for every dimension")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    params = applied(load_params("params.yaml"), args.preset)
    start, stop, step = (int(x) for x in args.grid.split(":"))
    grid = {"stop": stop, "coarse": stop, "fine_from": start, "fine_to": stop, "fine": step}
    shape = build(TaskShape, {**section(params, f"profile.{args.task}"), "grids": dict.fromkeys(args.dims, grid)},
                  f"profile.{args.task}")
    cfg = build(ProfileConfig, {**section(params, "profile.measure"), "passes": args.passes}, "profile.measure")
    device = resolve_device(params.get("device"))
    threads = cfg.threads or default_threads()
    target = task_module(args.task).latency_target(params)
    rows = sweep(target, shape, cfg, device, threads)
    summary = analyse(rows, cfg)
    out = args.out or Path("benchmarks/results") / f"profile_{args.preset}_{args.task}"
    table = latency_table(rows, summary)
    io.save_csv(table, out / "latency.csv")
    fp = fingerprint(device, threads)
    doc = {"task": args.task, "preset": args.preset, "base": target.base, "grid": args.grid, "passes": args.passes,
           "threads": threads, "runtime": runtime_name(device), "cpu": fp.get("cpu_model"),
           "dimensions": {d: {k: v for k, v in s.items() if k != "median_latency_s"} for d, s in summary.items()}}
    io.save_json(doc, out / "lhp.json")
    plot_profile(table, pd.DataFrame(columns=["product", "sparsity", "speedup"]),
                 f"{args.task} at the {args.preset} widths on {fp.get('cpu_model')} ({threads} threads)",
                 out / "lhe.png")
    print(json.dumps({d: {"lhps": s["lhps"], "redundancy": s["redundancy"]} for d, s in doc["dimensions"].items()}))


if __name__ == "__main__":
    main()
