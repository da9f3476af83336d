"""prune_rows: step (b), row/column pruning with rollback and halving (Algorithm 1)."""

from pathlib import Path

from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.common import check_some_accepted
from symbiotic.flow.prune_rows import PruneRowsConfig, prune_rows
from symbiotic.flow.stage import Context, load_step, score_line, threshold_from, write
from symbiotic.sparsity.thinning import thin
from symbiotic.sparsity.units import dims
from symbiotic.training.loop import Trainer

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--input", type=Path, required=True, help="step (a)'s checkpoint")
    p.add_argument("--baseline", type=Path, required=True, help="baseline metrics JSON (threshold)")
    p.add_argument("--log", type=Path, required=True, help="iteration CSV to write")
    args = p.parse_args(argv)
    ctx = Context("prune_rows", args.task, load_params(args.params), args.data, args.resume_dir, curves_dir=args.curves)
    threshold, tcfg = threshold_from(ctx, args.baseline)
    cfg = ctx.cfg(PruneRowsConfig, "prune_rows")
    task = ctx.task()
    start = load_step(task, args.input)
    model = start.model
    before = dims(model)
    trainer = Trainer(task, model, task.cfg, lr=start.lr)
    resume = ctx.resume(["train", "prune_rows", "threshold"], [args.input, args.baseline])
    log = prune_rows(task, model, trainer, cfg, threshold, tcfg.split, resume)
    outcome = check_some_accepted("prune_rows", args.task, log, threshold, tcfg.split, cfg.if_none_accepted)
    after = dims(model)
    small = thin(model)  # physically smaller, same outputs
    extra = {"threshold": threshold.bound, "iterations": len(log),
             "accepted": sum(r["accepted"] for r in log), **outcome,
             **{f"before.{k}": v for k, v in before.items()}, **{f"after.{k}": v for k, v in after.items()}}
    result = write(ctx, task, small, trainer, args.model, args.metrics, args.history, extra, log, args.log)
    resume.finish()
    print(f"prune_rows {args.task}: {before} -> {after}, "
          f"{score_line(task, result)} (threshold {threshold.bound:.2f})"
          + ("; NO iteration was accepted: the input is passed through" if outcome["passed_through"] else ""))


if __name__ == "__main__":
    run(main)
