"""report: one self-contained HTML page per task from the flow's outputs (reports/<task>.html),
and the task's headline metrics for `dvc exp show` (metrics/<task>/headline.json)."""

from pathlib import Path

from symbiotic import io
from symbiotic.cli import parser, run
from symbiotic.report.headline import headline
from symbiotic.report.page import Inputs, page, read_json


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("task", help="a task of symbiotic.tasks.TASKS (ptb, an4, ptb_char)")
    p.add_argument("--metrics", type=Path, required=True, help="the task's metrics folder")
    p.add_argument("--profile", type=Path, required=True, help="the task's profile folder")
    p.add_argument("--plots", type=Path, required=True, help="the task's plots folder")
    p.add_argument("--models", type=Path, required=True, help="the task's checkpoints folder")
    p.add_argument("--out", type=Path, required=True, help="HTML page to write")
    p.add_argument("--headline", type=Path, required=True, help="headline metrics JSON to write")
    args = p.parse_args(argv)
    text = page(Inputs(args.task, args.metrics, args.profile, args.plots, args.models))
    io.save_json(headline(args.task, read_json(args.metrics / "summary.json")), args.headline)
    io.save_text(text, args.out)
    print(f"report {args.task}: {args.out} ({len(text) // 1024} KiB)")


if __name__ == "__main__":
    run(main)
