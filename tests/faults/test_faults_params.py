"""Fault injection into params files: a file that is not what it seems (a key written twice, an
unknown section or task, a deleted key, a non-finite, mistyped, out-of-range or unknown value,
broken YAML) is refused by the stage, as a user runs it, before any work. Every refusal is
checked against the error contract (exit 2, one ``error:`` line naming the key and the fix) and
against the outputs that were there before (unchanged, nothing new written).

Each case is a hand-edited copy of the tiny params file. A refused run costs only the Python
start-up (~2 s with torch), so the cases run a few at a time, once, in a module fixture; each
test then checks its own run. (A section that is null or no mapping is refused where it is read:
tests/unit/test_config.py.)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from faults.harness import assert_refused, assert_unchanged, fingerprint, run_stage, training_args
from helpers import tiny_params_file, tiny_prepared_ptb
from symbiotic.config import build, load_params, section
from symbiotic.flow.stage import ThresholdConfig
from symbiotic.tasks.ptb import BaselineSpec, TrainConfig

# Outputs of an earlier run of each stage the cases run: a refused run must leave them be.
EARLIER = {"models/baseline.pt": b"an earlier baseline checkpoint", "metrics/baseline.json": b'{"x": 1}\n',
           "plots/baseline.csv": b"epoch\n1\n", "models/prune_rows.pt": b"an earlier step (b)",
           "metrics/prune_rows.json": b'{"x": 2}\n', "plots/prune_rows.csv": b"epoch\n1\n",
           "metrics/prune_rows_log.csv": b"iteration\n1\n"}
STAGES = {"baseline": training_args("ptb", "baseline"),
          "prune_rows": [*training_args("ptb", "prune_rows"), "--input", "models/grow.pt",
                         "--baseline", "metrics/baseline.json", "--log", "metrics/prune_rows_log.csv"]}


# ---- edits of the params text (block-style YAML, two spaces a level, as yaml.safe_dump writes) ----
def _line(lines: list[str], dotted: str) -> int:
    """The index of the line that holds key ``dotted``."""
    at = 0
    for depth, key in enumerate(dotted.split(".")):
        prefix = "  " * depth + key + ":"
        at = next(i for i in range(at, len(lines)) if lines[i] == prefix or lines[i].startswith(prefix + " "))
    return at


def _edit(change: Callable[[list[str]], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.splitlines()
        change(lines)
        return "\n".join(lines) + "\n"
    return edit


def set_value(dotted: str, value: str):
    """``key: value`` in place of the key's value (the text as YAML reads it: ``.nan``)."""
    def change(lines):
        i = _line(lines, dotted)
        lines[i] = lines[i].split(":")[0] + f": {value}"
    return _edit(change)


def delete(dotted: str):
    return _edit(lambda lines: lines.pop(_line(lines, dotted)))


def write_twice(dotted: str, value: str):
    """The key written a second time, on the next line, with another value."""
    def change(lines):
        i = _line(lines, dotted)
        lines.insert(i + 1, lines[i].split(":")[0] + f": {value}")
    return _edit(change)


def insert_after(dotted: str, text: str):
    return _edit(lambda lines: lines.insert(_line(lines, dotted) + 1, text.rstrip("\n")))


def append(text: str):
    return lambda params: params + text


def replace_all(text: str):
    return lambda params: text


@dataclass(frozen=True)
class Case:
    edit: Callable[[str], str]
    says: tuple[str, ...]  # fragments of the one error line
    stage: str = "baseline"


CASES = {
    "key twice in a task section": Case(write_twice("train.ptb.lr", "7.0"),
                                        ("key 'train.ptb.lr' is written twice", "lines", "keep one")),
    "key twice at the top level": Case(write_twice("device", "cuda"),
                                       ("key 'device' is written twice (lines 1 and 2)",)),
    "unknown top-level section": Case(append("trian:\n  ptb:\n    lr: 1.0\n"),
                                      ("unknown section 'trian'", "device, prepare, model, train")),
    "unknown task subsection": Case(insert_after("train", "  ptbb:\n    lr: 1.0"),
                                    ("unknown task 'train.ptbb'", "ptb, an4")),
    "deleted key": Case(delete("baseline.ptb.dropout_words"), ("lacks 'baseline.ptb.dropout_words'",)),
    "nan learning rate": Case(set_value("train.ptb.lr", ".nan"), ("'train.ptb.lr' is nan, not a finite number",
                                                                   "set a finite value")),
    "nan threshold": Case(set_value("threshold.ptb.value", ".nan"), ("'threshold.ptb.value' is nan",),
                          stage="prune_rows"),
    "inf where a range has no top": Case(set_value("train.ptb.clip", ".inf"),
                                         ("'train.ptb.clip' is inf, not a finite number",)),
    "wrong type": Case(set_value("train.ptb.batch", "four"), ("'train.ptb.batch' is 'four' (str)", "give a int")),
    "out of range": Case(set_value("train.ptb.momentum", "1.5"), ("'train.ptb.momentum' is 1.5, out of range",)),
    "unknown choice": Case(set_value("train.ptb.optimizer", "rmsprop"),
                           ("'train.ptb.optimizer' is 'rmsprop'", "sgd, adam")),
    "malformed yaml": Case(set_value("train.ptb.lr", "[5.0"), ("is not valid yaml", "line", "fix its syntax")),
    "not a mapping": Case(replace_all("- train\n- baseline\n"), ("must hold a mapping of sections",)),
}


def _prepare_case(root: Path, name: str) -> tuple[Path, Path, dict]:
    """A folder with prepared data, earlier outputs and the case's params file; its fingerprint."""
    folder = root / name.replace(" ", "_")
    tiny_prepared_ptb(folder / "data")
    for rel, data in EARLIER.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    params = tiny_params_file(folder)  # folder/params.yaml, which the fingerprint leaves out
    params.write_text(CASES[name].edit(params.read_text()))
    return folder, params, fingerprint(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case's stage run once, a few at a time: {case: (process, folder, fingerprint before)}."""
    root = tmp_path_factory.mktemp("params_faults")
    prepared = {name: _prepare_case(root, name) for name in CASES}

    def run(name):
        folder, params, _ = prepared[name]
        return run_stage(folder, CASES[name].stage, *STAGES[CASES[name].stage], params=params, timeout=120)

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        procs = dict(zip(CASES, pool.map(run, CASES)))
    return {name: (procs[name], prepared[name][0], prepared[name][2]) for name in CASES}


def test_the_unedited_params_pass_the_checks(tmp_path):
    # The control: what the cases refuse is their edit, not the tiny params they start from.
    params = load_params(tiny_params_file(tmp_path))
    for cls, where in ((TrainConfig, "train.ptb"), (BaselineSpec, "baseline.ptb"), (ThresholdConfig, "threshold.ptb")):
        build(cls, section(params, where), where)


@pytest.mark.parametrize("name", CASES)
def test_refused_before_any_work(runs, name):
    proc, folder, before = runs[name]
    assert_refused(proc, *CASES[name].says)
    assert_unchanged(before, folder)
