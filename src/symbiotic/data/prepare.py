"""The prepare stage's work for any task: locate, verify, process, then write.

What is task-specific (params, source files, processing) comes from the task's
preparation module through the one registry (``tasks.task_preparation``), which
imports only that task's modules: an edit to one task never reruns the other's
prepare stage. The task writes its files into a folder built aside, which ``prepared.build``
seals with a manifest and swaps into ``out`` as a whole.
"""

from __future__ import annotations

from pathlib import Path

from symbiotic import io
from symbiotic.config import section
from symbiotic.data import fetch, prepared
from symbiotic.errors import UserError
from symbiotic.tasks import task_preparation


def source_param(params: dict) -> str | None:
    source = section(params, "prepare").get("source")
    if source is not None and not isinstance(source, str):
        raise UserError(f"'prepare.source' is {source!r}", "give a folder path or null")
    return source


def prepare_task(task: str, params: dict, out: Path, metrics: Path, sums: Path,
                 downloads: Path) -> dict:
    """Prepare ``task`` into ``out`` and write its metrics JSON; returns the metrics."""
    preparation = task_preparation(task)  # an unknown task fails here, before any work
    where = f"prepare.{task}"
    values = section(params, where)
    source = source_param(params)  # validate params before any slow work
    cfg = preparation.config(values, where)
    # The dataset a task reads: its own name, unless its preparation names another (a
    # character-level PTB task reads the ptb/ files).
    folder = fetch.locate(getattr(preparation, "DATASET", task), source, downloads)
    fetch.verify(folder, fetch.read_sums(sums), preparation.source_files(folder))
    result = prepared.build(out, task, lambda aside: preparation.prepare(folder, cfg, aside))
    io.save_json(result, metrics)
    return result
