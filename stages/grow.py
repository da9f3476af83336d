"""grow: step (a), train an H-LSTM from a 50%-sparse seed with gradient-based weight growth."""

from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.grow import GrowConfig, grow
from symbiotic.flow.stage import Context, score_line, write

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--log", required=True, help="growth-point CSV to write")
    args = p.parse_args(argv)
    ctx = Context("grow", args.task, load_params(args.params), args.data, args.resume_dir, curves_dir=args.curves)
    spec = ctx.model_spec()
    cfg = ctx.cfg(GrowConfig, "grow")
    task = ctx.task()
    resume = ctx.resume(["train", "model", "grow"], [args.data / "train.pt"])
    model, trainer, log = grow(task, spec, cfg, resume)
    extra = {"seed_density": cfg.seed_density, "growth_points": sum(r["event"] == "growth" for r in log)}
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, extra, log, args.log)
    resume.finish()
    print(f"grow {args.task}: density {result['recurrent_density']:.3f}, "
          f"{score_line(task, result)} in {result['seconds']} s")


if __name__ == "__main__":
    run(main)
