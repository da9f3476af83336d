"""baseline: train the task's stock nn.LSTM model; its score is the default threshold."""

from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.baseline import train_baseline
from symbiotic.flow.stage import Context, score_line, write

from _args import training_parser


def main(argv=None):
    args = training_parser(__doc__).parse_args(argv)
    ctx = Context("baseline", args.task, load_params(args.params), args.data, args.resume_dir, curves_dir=args.curves)
    spec = ctx.baseline_spec()
    task = ctx.task()
    resume = ctx.resume(["train", "baseline"], [args.data / "train.pt"])
    model, trainer = train_baseline(task, spec, resume)
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, {})
    resume.finish()
    print(f"baseline {args.task}: {score_line(task, result)} in {result['seconds']} s")


if __name__ == "__main__":
    run(main)
