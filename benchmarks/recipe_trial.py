"""Benchmark: one training recipe tried on a task's real data, epoch by epoch (a recipe search's unit).

    python benchmarks/recipe_trial.py TASK [--model hlstm|baseline] [--epochs 2] [--preset NAME]
                                           [--set KEY=VALUE ...] [--out FILE]

Trains, from scratch, the flow's starting H-LSTM (``model.TASK``, dense: what step (a) starts
from before its seed sparsity) or the stock baseline (``baseline.TASK``) with the params'
recipe ``train.TASK``, laid over by ``--preset`` and then by ``--set`` (YAML values, as
``dvc exp run -S`` takes them: ``--set train.ptb.lr=20 train.ptb.train_tokens=null``). After
every epoch it records the monitor split's score, the training loss, the rate and the seconds,
through the stages' own Trainer. Nothing is written but ``--out``; run it alone (it trains on
every core torch is given).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from symbiotic.config import load_params
from symbiotic.flow.stage import Context
from symbiotic.preset import applied, merge
from symbiotic.training.loop import Trainer

from _results import emit


def overrides(pairs: list[str]) -> dict:
    """``a.b.c=value`` pairs as one nested dict (values parsed as YAML)."""
    out: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: --set takes KEY=VALUE, got {pair!r}")
        node = out
        *parents, leaf = key.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(text)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["ptb", "an4"])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", choices=["hlstm", "baseline"], default="hlstm")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--preset", default=None)
    p.add_argument("--set", nargs="*", default=[], dest="sets")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    params = load_params(args.params)
    if args.preset:
        applied(params, args.preset)
    merge(params, overrides(args.sets))
    ctx = Context("recipe_trial", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    torch.manual_seed(task.cfg.seed)
    if args.model == "hlstm":
        model = task.new_model(ctx.model_spec())
    else:
        spec = {k: v for k, v in vars(ctx.baseline_spec()).items() if k != "epochs"}
        model = task.new_baseline(spec)
    trainer = Trainer(task, model, task.cfg)
    began = time.perf_counter()
    rows = []
    for _ in range(args.epochs):
        rows.append(trainer.epoch(args.model))
        print(json.dumps(rows[-1]), flush=True)
    result = {"task": args.task, "model": args.model, "preset": args.preset, "set": args.sets,
              "train": vars(task.cfg) if hasattr(task.cfg, "__dict__") else str(task.cfg),
              "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - began, 1),
              "epochs": rows}
    emit(result, args.out)


if __name__ == "__main__":
    main()
