"""Arguments every training stage shares (paths only; all values come from params.yaml)."""

from pathlib import Path

from symbiotic.cli import parser


def training_parser(doc: str):
    p = parser(doc)
    p.add_argument("task", help="a task of symbiotic.tasks.TASKS (ptb, an4, ptb_char)")
    p.add_argument("--data", type=Path, required=True, help="prepared data folder of the task")
    p.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--history", type=Path, required=True, help="per-epoch CSV to write")
    p.add_argument("--curves", type=Path, default=None,
                   help="folder the per-epoch curves are logged into with dvclive (dvc plots)")
    p.add_argument("--resume-dir", type=Path, default=Path(".resume"),
                   help="where an interrupted run keeps its progress (not a DVC output)")
    return p
