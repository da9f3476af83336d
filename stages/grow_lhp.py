"""grow_lhp: step (c), grow rows/columns to the target device's latency hysteresis points."""

from pathlib import Path

from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.grow_lhp import GrowLHPConfig, grow_lhp
from symbiotic.flow.stage import Context, load_step, score_line, write

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--input", type=Path, required=True, help="step (b)'s thinned checkpoint")
    p.add_argument("--fallback", type=Path, required=True, help="step (a)'s checkpoint (the sparse path's)")
    p.add_argument("--profile", type=Path, required=True, help="the target device's profile folder")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ctx = Context("grow_lhp", args.task, params, args.data, args.resume_dir, curves_dir=args.curves)
    cfg = ctx.cfg(GrowLHPConfig, "grow_lhp")
    profile, device, threads = ctx.target(args.profile)
    task = ctx.task()
    pruned, full = load_step(task, args.input), load_step(task, args.fallback)
    model, trainer, extra = grow_lhp(task, cfg, profile.doc, profile.latency, pruned, full, device, threads)
    extra["profile_mismatch"] = profile.mismatch
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, extra)
    print(f"grow_lhp {args.task}: mode {extra['decision']['mode']} ({extra['decision']['reason']}); "
          f"widths {model.widths()} from {extra['source']}, {score_line(task, result)}")


if __name__ == "__main__":
    run(main)
