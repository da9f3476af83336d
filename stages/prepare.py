"""prepare: verify a task's real dataset and write its tensors and metrics."""

from pathlib import Path

from symbiotic.cli import parser, run
from symbiotic.config import load_params
from symbiotic.data.prepare import prepare_task


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("task", help="a task of symbiotic.tasks.TASKS (ptb, an4, ptb_char)")
    p.add_argument("--out", type=Path, required=True, help="folder for the prepared tensors")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--sums", type=Path, required=True, help="SHA256 sums of the source files")
    p.add_argument("--downloads", type=Path, default=Path("data/downloads"),
                   help="where archives are downloaded when no local copy is given")
    args = p.parse_args(argv)
    result = prepare_task(args.task, load_params(args.params), args.out, args.metrics,
                          args.sums, args.downloads)
    print(f"prepare {args.task}: " + ", ".join(f"{k}={v}" for k, v in sorted(result.items())))


if __name__ == "__main__":
    run(main)
