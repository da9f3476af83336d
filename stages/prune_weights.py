"""prune_weights: step (d), magnitude weight pruning; exports the fastest form for the device."""

from pathlib import Path

from symbiotic import io
from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.prune_weights import PruneWeightsConfig, prune_weights, ship
from symbiotic.flow.stage import Context, load_step, score_line, threshold_from, write
from symbiotic.hardware.measure import default_threads, resolve_device
from symbiotic.hardware.report import load_profile
from symbiotic.training.loop import Trainer

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--input", type=Path, required=True, help="step (c)'s checkpoint")
    p.add_argument("--baseline", type=Path, required=True, help="baseline metrics JSON (threshold)")
    p.add_argument("--profile", type=Path, required=True, help="the target device's profile folder")
    p.add_argument("--export", type=Path, required=True, help="inference export to write")
    p.add_argument("--log", type=Path, required=True, help="iteration CSV to write")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ctx = Context("prune_weights", args.task, params, args.data, args.resume_dir)
    threshold, tcfg = threshold_from(ctx, args.baseline)
    cfg = ctx.cfg(PruneWeightsConfig, "prune_weights")
    device = resolve_device(params.get("device"))  # the export targets it: fail early if it is absent
    profile, _ = load_profile(args.profile)
    task = ctx.task()
    start = load_step(task, args.input)
    model = start.model
    trainer = Trainer(task, model, task.cfg, lr=start.lr)
    resume = ctx.resume(["train", "prune_weights", "threshold"], [args.input, args.baseline])
    log = prune_weights(task, model, trainer, cfg, threshold, tcfg.split, resume)

    exported, shipped = ship(task, model, profile, cfg, device, default_threads())
    io.save_tensors(task.inference_state(exported), args.export)
    extra = {"threshold": threshold.bound, "iterations": len(log),
             "accepted": sum(r["accepted"] for r in log), **shipped}
    formats, widths = shipped["formats"], shipped["widths"]
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, extra, log, args.log)
    resume.finish()
    print(f"prune_weights {args.task}: density {result['recurrent_density']:.3f}, formats {formats}, "
          f"widths {widths[widths['shipped']]} ({widths['shipped']}), "
          f"{score_line(task, result)} (threshold {threshold.bound:.2f})")


if __name__ == "__main__":
    run(main)
