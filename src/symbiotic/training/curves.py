"""Training curves logged with dvclive as training goes, one folder per step.

Every epoch's row (the Trainer's history: loss, score, learning rate, density, widths) becomes
one dvclive step in ``<folder>/plots/metrics/<name>.tsv``, which ``dvc plots show`` and
``dvc plots diff`` draw (dvc.yaml's top-level ``plots:``) while the stage still runs. The step's
history CSV (``--history``) stays the one file the report and the tables read; both are written
from the same rows. DVC clears a stage's outputs before a rerun, so a resumed stage logs the
epochs it restored again before it goes on (:func:`replay`). Of several processes rank 0 logs.
"""

from __future__ import annotations

import math
from pathlib import Path

from symbiotic.training import distributed

_folder: Path | None = None
_live = None


def open_folder(folder: Path | None) -> None:
    """Log this stage's curves into ``folder`` (None: not at all, e.g. in unit tests)."""
    global _folder, _live
    _folder, _live = (Path(folder) if folder is not None else None), None


def log(row: dict) -> None:
    """One epoch's numbers as the next dvclive step (text fields, like the step's tag, are not
    curves; the epoch is the step's number)."""
    global _live
    if _folder is None or not distributed.current().writer:
        return
    if _live is None:
        from dvclive import Live  # imported here: only stages that log pay for it

        # No dvc.yaml edits, no experiment of its own, no report: DVC runs the stage already.
        _live = Live(str(_folder), resume=False, report=None, save_dvc_exp=False, dvcyaml=None)
    for name, value in row.items():
        if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            _live.log_metric(name, value)
    _live.next_step()


def close() -> None:
    """The folder exists when the stage ends, even where it trained no epoch (step (c) on the
    sparse path): DVC expects every declared output."""
    if _folder is not None and distributed.current().writer:
        _folder.mkdir(parents=True, exist_ok=True)


def replay(rows: list[dict]) -> None:
    """Log the rows of a resumed run again, in order, into a fresh folder."""
    open_folder(_folder)
    for row in rows:
        log(row)
