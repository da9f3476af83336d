"""Benchmark: training speed of the H-LSTM against the stock nn.LSTM of equal recurrent parameters.

    python benchmarks/train_throughput.py TASK [--batches 10] [--rounds 5] [--threads 1 2] [--out FILE]

Both models train on the same first training batches of the task's real data (epoch 1's order),
through the stages' own loss and optimizer step (``Trainer.step``): the H-LSTM at the flow's
starting widths (``model.TASK``, dense, as step (a) trains it) and an ``nn.LSTM`` model of the
baseline's shape (``baseline.TASK``) whose width is chosen so its recurrent parameters match
the H-LSTM's. Rounds alternate the two models in random order; each round trains ``--batches``
batches per model, from the same weights every round. Reported: milliseconds per batch (median,
min-max) and the ratio of parameters trained per second, H-LSTM over nn.LSTM (>= 1: the H-LSTM
trains at least as fast per parameter). Run it alone: a second heavy job spoils the timings.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import random
import statistics
import time
from pathlib import Path

import torch

from symbiotic.config import load_params
from symbiotic.flow.stage import Context
from symbiotic.models.counting import count_parameters
from symbiotic.training.loop import Trainer

from _results import emit


def recurrent_params(model) -> int:
    return count_parameters(model)["recurrent_dense"]


def equal_baseline(task, ctx: Context, target: int):
    """The baseline's shape at the width whose recurrent parameters are nearest ``target``
    (recurrent parameters grow with the width: bisection)."""
    spec = dataclasses.asdict(ctx.baseline_spec())
    spec.pop("epochs")

    def count(width: int) -> int:
        return recurrent_params(task.new_baseline({**spec, "hidden": width}))

    lo, hi = 1, 4096
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    width = min((lo - 1, lo), key=lambda w: abs(count(max(w, 1)) - target))
    return task.new_baseline({**spec, "hidden": max(width, 1)}), max(width, 1)


def train_call(task, model, batches: int):
    """Training ``batches`` batches from ``model``'s starting weights (restored every call)."""
    start = copy.deepcopy(model.state_dict())

    def call() -> float:
        model.load_state_dict(start)
        trainer = Trainer(task, model, task.cfg)
        model.train()
        began = time.perf_counter()
        for loss, _ in itertools.islice(task.train_losses(model, 1), batches):
            trainer.step(loss)
        return (time.perf_counter() - began) / batches

    return call


def timed(calls: dict, threads: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    samples = {name: [] for name in calls}
    for name in calls:  # warm-up: first-call allocations and caches
        calls[name]()
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            samples[name].append(calls[name]())
    return {name: {"median_ms": round(statistics.median(v) * 1e3, 2), "min_ms": round(min(v) * 1e3, 2),
                   "max_ms": round(max(v) * 1e3, 2)} for name, v in samples.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["ptb", "an4"])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    params = load_params(args.params)
    ctx = Context("benchmark", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    torch.manual_seed(0)
    hlstm = task.new_model(ctx.model_spec())
    target = recurrent_params(hlstm)
    lstm, width = equal_baseline(task, ctx, target)
    params_of = {"hlstm": target, "lstm": recurrent_params(lstm)}
    calls = {"hlstm": train_call(task, hlstm, args.batches), "lstm": train_call(task, lstm, args.batches)}
    result = {"task": args.task, "batches": args.batches, "rounds": args.rounds,
              "hlstm_spec": ctx.model_spec(), "lstm_width": width, "recurrent_params": params_of, "threads": {}}
    for n in args.threads:
        t = timed(calls, n, args.rounds)
        rate = {k: params_of[k] / t[k]["median_ms"] for k in t}
        result["threads"][str(n)] = {**t, "per_parameter_speed_x": round(rate["hlstm"] / rate["lstm"], 3),
                                     "per_batch_speed_x": round(t["lstm"]["median_ms"] / t["hlstm"]["median_ms"], 3)}
    emit(result, args.out)


if __name__ == "__main__":
    main()
