"""Benchmark: how many training batches does the growth gradient need to be stable?

    python benchmarks/growth_sample.py TASK [--batches 5 10 20 40] [--out FILE]

Growth wakes dormant connections by their gradient averaged over a sample of training batches
(``train.<task>.grad_batches``). For each sample size this draws two independent samples, runs
one growth point of step (a) from the same 50%-sparse seed with each, and reports how much the
two chosen sets agree (Jaccard overlap: |A ∩ B| / |A ∪ B|, 1 = identical). A sample is big
enough when the overlap stops rising. Also reports the density after the growth point under the
paper's percentile (over the whole matrix) and the older one (over dormant entries).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from symbiotic.config import load_params
from symbiotic.flow.common import seed_everything
from symbiotic.flow.grow import GrowConfig, gradient_magnitudes
from symbiotic.flow.stage import Context
from symbiotic.sparsity.growth import grow_masks
from symbiotic.sparsity.masks import random_masks, recurrent_masks


def _chosen(grads, masks, cfg: GrowConfig, population: str) -> dict[str, torch.Tensor]:
    new = grow_masks(grads, masks, cfg.growth_ratio, scope=cfg.scope, population=population)
    return {n: new[n].bool() & ~masks[n].bool() for n in masks}


def _jaccard(a: dict, b: dict) -> float:
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    return inter / union if union else 1.0


def _density(masks: dict, woken: dict) -> float:
    active = sum(int(masks[n].bool().sum()) + int(woken[n].sum()) for n in masks)
    return active / sum(masks[n].numel() for n in masks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("ptb", "an4"))
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--batches", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    params = load_params(args.params)
    ctx = Context("benchmark", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    cfg = ctx.cfg(GrowConfig, "grow")
    gen = seed_everything(task.cfg.seed)
    model = task.new_model(ctx.model_spec())
    random_masks(model.layers, cfg.seed_density, gen)
    masks = {n: m.clone() for n, (_, m) in recurrent_masks(model).items()}
    rows = []
    for n in args.batches:
        ga = gradient_magnitudes(task, model, n, seed=1000)
        gb = gradient_magnitudes(task, model, n, seed=2000)  # another sample of n batches
        row = {"batches": n}
        for population in ("matrix", "dormant"):
            a, b = _chosen(ga, masks, cfg, population), _chosen(gb, masks, cfg, population)
            row[f"{population}_overlap"] = round(_jaccard(a, b), 4)
            row[f"{population}_density"] = round(_density(masks, a), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"task": args.task, "seed_density": cfg.seed_density,
                                        "growth_ratio": cfg.growth_ratio, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
