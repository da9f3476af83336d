"""Benchmark: does dimension reduction pay on the sparse path? Step (a)'s and step (b)'s widths at
several sparsities, against the baseline, side by side (recurrent part, CSR for every matrix).

    python benchmarks/sparse_widths.py TASK [--sparsity 0.9 0.98] [--rounds 5] [--out FILE]

Reads models/TASK/{baseline,grow,prune_rows}.pt as the flow wrote them; the pruned copies are made
by magnitude without retraining (grow_lhp.at_sparsity), so this times shapes, not accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from symbiotic.config import load_params
from symbiotic.flow.evaluate import EvaluateConfig
from symbiotic.flow.grow_lhp import at_sparsity
from symbiotic.flow.latency import side_by_side
from symbiotic.flow.stage import Context, load_step
from symbiotic.hardware.measure import default_threads, resolve_device
from symbiotic.runtime.formats import every

from _results import emit

CSR = every("csr")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("ptb", "an4"))
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--sparsity", type=float, nargs="+", default=[0.9, 0.98])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.get("device"))
    ctx = Context("benchmark", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    shape = ctx.cfg(EvaluateConfig, "evaluate")
    models = Path("models") / args.task
    inputs = tuple(t.to(device) for t in task.latency_inputs(shape.batch, shape.seq_len))
    def load(name: str):
        return load_step(task, models / f"{name}.pt", hlstm=name != "baseline").model.eval()

    calls = {"baseline": task.latency_call(load("baseline").to(device), inputs, "recurrent")}
    widths = {}
    for step in ("grow", "prune_rows"):
        model = load(step)
        widths[step] = model.widths()
        for s in args.sparsity:
            exported = task.export(at_sparsity(model, s), CSR).eval().to(device)
            calls[f"{step}@{s:g}"] = task.latency_call(exported, inputs, "recurrent")
    timing = side_by_side(calls, device, default_threads(), args.rounds, min_run_time=0.2)
    base = timing["baseline"]["median_s"]
    result = {"task": args.task, "rounds": args.rounds, "widths": widths,
              "recurrent_ms": {k: round(t["median_s"] * 1e3, 1) for k, t in timing.items()},
              "speedup_x": {k: round(base / t["median_s"], 2) for k, t in timing.items()}}
    emit(result, args.out)


if __name__ == "__main__":
    main()
