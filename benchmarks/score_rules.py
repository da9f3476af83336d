"""Benchmark: which row/column score keeps more accuracy at the same widths?

    python benchmarks/score_rules.py TASK [--retrain 1] [--out FILE]

Step (b) ranks units by the sum of |w| over their rows and columns. The paper (Algorithm 1)
sums over the control-gate matrices only ("control", the default); the older rule summed over
every tensor a unit touches, embedding and decoder included ("all"). This takes step (a)'s
model of the default run (``models/<task>/grow.pt``), prunes it in one shot to the widths step
(b) reached in that run (``metrics/<task>/prune_rows.json``) with each rule, and scores both
on the validation and test splits right after pruning and after ``--retrain`` epochs. Both
start from the same model, widths, seed and learning rate: only the ranking differs.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from symbiotic.config import load_params
from symbiotic.flow.common import seed_everything
from symbiotic.flow.stage import Context, load_step
from symbiotic.sparsity.pruning import smallest_units_per_group
from symbiotic.sparsity.units import SCORE_RULES, active_units, remove_units, unit_key, unit_scores
from symbiotic.training.loop import Trainer


def prune_to(model, widths: dict[str, int], rule: str) -> None:
    """Remove each key's lowest-scoring units (per block: the four gates of a gate key) down to
    ``widths`` in one shot."""
    for key, width in widths.items():
        blocks = unit_key(model, key).blocks
        active = active_units(model, key)
        count = int(active.view(blocks, -1).sum(1).min()) - width
        if count > 0:
            remove_units(model, key, smallest_units_per_group(unit_scores(model, key, rule), active, blocks,
                                                              count=count))


def _scores(task, model) -> dict[str, float]:
    return {split: round(task.score(model, split), 3) for split in task.splits}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("ptb", "an4"))
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--retrain", type=int, default=1, help="epochs of retraining after pruning")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    ctx = Context("benchmark", args.task, load_params(args.params), Path("data/prepared") / args.task, None)
    task = ctx.task()
    start = load_step(task, Path("models") / args.task / "grow.pt")
    pruned = json.loads((Path("metrics") / args.task / "prune_rows.json").read_text())
    widths = {key: pruned[f"after.{key}"] for key in start.model.widths()}
    rows = []
    for rule in SCORE_RULES:
        model = copy.deepcopy(start.model)
        prune_to(model, widths, rule)
        row = {"rule": rule, "widths": widths, "pruned": _scores(task, model)}
        seed_everything(task.cfg.seed)  # the same dropout for both rules
        trainer = Trainer(task, model, task.cfg, lr=start.lr)
        for _ in range(args.retrain):
            trainer.epoch(tag=f"score_{rule}")
        row["retrained"] = _scores(task, model)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"task": args.task, "retrain_epochs": args.retrain, "rows": rows},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
