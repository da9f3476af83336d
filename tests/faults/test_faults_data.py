"""Fault injection into prepared data: damaged, foreign or half-written prepared folders read by
a training stage, and prepare runs that fail or die midway. Every refusal is checked against the
error contract (exit 2, one ``error:`` line naming the file and the fix, before any training) and
against what was there before (unchanged, nothing new written)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import yaml

from faults.harness import assert_refused, assert_unchanged, fingerprint, run_stage, training_args
from helpers import ROOT, merge, tiny_prepared_an4, tiny_prepared_ptb, write_sums
from symbiotic.data.prepared import write_manifest


# ---- a training stage reading a prepared folder ----------------------------------------------
def _folder(cwd, task: str):
    """A prepared folder of ``task`` (with its manifest) under cwd/data, and a previous output."""
    (tiny_prepared_ptb if task == "ptb" else tiny_prepared_an4)(cwd / "data")
    (cwd / "models").mkdir()
    (cwd / "models/baseline.pt").write_bytes(b"the previous baseline")
    return cwd / "data"


def _refused(cwd, task: str, *fragments: str, data: str = "data") -> str:
    """The baseline stage on cwd/``data`` is refused naming ``fragments``; nothing is touched."""
    before = fingerprint(cwd)
    line = assert_refused(run_stage(cwd, "baseline", *training_args(task, "baseline", data)), *fragments)
    assert_unchanged(before, cwd)
    return line


def _save(name: str, value):
    return lambda folder: torch.save(value, folder / name)


def _same_size_garbage(name: str):
    return lambda folder: (folder / name).write_bytes(bytes(len((folder / name).read_bytes())))


def _truncate(name: str):
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:50])


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _duplicate_word(folder):
    (folder / "vocab.txt").write_text((folder / "vocab.txt").read_text().replace("w7\n", "w3\n"))


# (what is damaged, re-sealed with a fresh manifest: the loader's own check is what refuses)
PTB_FAULTS = {
    "truncated tensor": (_truncate("train.pt"), True, ("prepared split data/train.pt is unreadable",)),
    "float tensor": (_save("train.pt", torch.rand(500)), True, ("train.pt holds a 1-D torch.float32 tensor",)),
    "2-D tensor": (_save("train.pt", torch.zeros(50, 10, dtype=torch.int64)), True,
                   ("train.pt holds a 2-D torch.int64 tensor", "not a 1-D int64")),
    "id beyond the vocabulary": (_save("train.pt", torch.arange(500) % 31), True,
                                 ("train.pt has token ids 0..30, outside the 30-word vocabulary",)),
    "negative id": (_save("valid.pt", torch.arange(500) % 30 - 1), True, ("valid.pt has token ids -1..28",)),
    "empty split": (_save("test.pt", torch.zeros(0, dtype=torch.int64)), True,
                    ("test.pt holds 0 tokens",)),
    "duplicate word": (_duplicate_word, True, ("vocab.txt lists 'w3' twice (lines 4 and 8)",)),
    "vocab.txt missing": (_remove("vocab.txt"), False, ("vocab.txt is listed in manifest.json but missing",)),
    "manifest missing": (_remove("manifest.json"), False,
                         ("has no manifest.json: it is incomplete or was written by an interrupted prepare",
                          "rerun `dvc repro prepare_ptb`")),
    "changed after the manifest": (_same_size_garbage("valid.pt"), False,
                                   ("valid.pt differs from its SHA256 in manifest.json",)),
    "resized after the manifest": (_truncate("test.pt"), False,
                                   ("test.pt has 50 bytes, manifest.json records",)),
}


@pytest.mark.parametrize("fault", PTB_FAULTS)
def test_damaged_ptb_data_is_refused_before_training(tmp_path, fault):
    change, seal, fragments = PTB_FAULTS[fault]
    folder = _folder(tmp_path, "ptb")
    change(folder)
    if seal:
        write_manifest(folder, "ptb")
    _refused(tmp_path, "ptb", *fragments)


def _an4_split(name: str, change):
    def damage(folder):
        packed = torch.load(folder / name, weights_only=True)
        change(packed)
        torch.save(packed, folder / name)
    return damage


AN4_FAULTS = {
    "label outside the label set": (_an4_split("train.pt", lambda p: p["labels"].__setitem__(2, 29)),
                                    ("train.pt: label ids run", "outside the label set (1..28")),
    "NaN features": (_an4_split("valid.pt", lambda p: p["features"].__setitem__((5, 3), float("nan"))),
                     ("valid.pt: 'features' has NaN or infinite values in 1 frames",)),
}


@pytest.mark.parametrize("fault", AN4_FAULTS)
def test_damaged_an4_data_is_refused_before_training(tmp_path, fault):
    change, fragments = AN4_FAULTS[fault]
    folder = _folder(tmp_path, "an4")
    change(folder)
    write_manifest(folder, "an4")
    _refused(tmp_path, "an4", *fragments)


def test_the_prepared_folder_of_another_task_is_refused(tmp_path):
    _folder(tmp_path, "ptb")
    _refused(tmp_path, "an4", "data/manifest.json is the manifest of task 'ptb', not 'an4'",
             "point --data at the an4 prepared folder")


# ---- prepare failing or dying midway ----------------------------------------------------------
def _prepare(cwd, task: str, fixture: dict, argv0: list[str] | None = None) -> subprocess.CompletedProcess:
    """The prepare stage of ``task`` on a tiny corpus into cwd/prepared/<task>; ``argv0`` replaces
    ``python stages/prepare.py`` (to run it under a fault)."""
    params = cwd / "prepare_params.yaml"  # the repository's prepare section, the tiny corpus's over it
    prepare = merge(yaml.safe_load((ROOT / "params.yaml").read_text())["prepare"], copy.deepcopy(fixture["params"]))
    params.write_text(yaml.safe_dump({"prepare": prepare}))
    cmd = (argv0 or [sys.executable, str(ROOT / "stages" / "prepare.py")]) + [
        task, "--params", str(params), "--out", str(cwd / "prepared" / task), "--metrics",
        str(cwd / "metrics" / f"{task}.json"), "--sums", str(fixture["sums"]), "--downloads", str(cwd / "dl")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_a_prepare_failing_late_keeps_the_previous_complete_folder(tmp_path, tiny_an4):
    assert _prepare(tmp_path, "an4", tiny_an4).returncode == 0
    before = fingerprint(tmp_path / "prepared")
    victim = tiny_an4["folder"] / "wav/an4test_clstk/spk3/an9-spk3-b.sph"  # the test split: read last
    victim.write_bytes(victim.read_bytes()[:2000])
    write_sums(tiny_an4["folder"], [line.split()[1] for line in tiny_an4["sums"].read_text().splitlines()],
               tiny_an4["sums"])  # so that the audio reader is what fails, midway through prepare
    assert_refused(_prepare(tmp_path, "an4", tiny_an4), "an9-spk3-b.sph is unreadable: truncated")
    assert_unchanged(before, tmp_path / "prepared")
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == ["an4"]  # no half folder beside it


# Run the prepare stage, dying abruptly (no cleanup runs, as under kill -9) once the token
# tensors are written and before the vocabulary is.
KILLED = """
import os, runpy, sys
from symbiotic import io
io.save_text = lambda text, path: os._exit(9)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_killed_prepare_leaves_the_previous_folder_and_a_refused_half_one(tmp_path, tiny_ptb):
    assert _prepare(tmp_path, "ptb", tiny_ptb).returncode == 0
    out = tmp_path / "prepared" / "ptb"
    before = fingerprint(out)
    tiny_ptb["params"]["ptb"]["vocab_size"] = 5  # the new folder would differ
    killed = _prepare(tmp_path, "ptb", tiny_ptb, [sys.executable, "-c", KILLED, str(ROOT / "stages/prepare.py")])
    assert killed.returncode == 9, killed.stderr
    assert_unchanged(before, out)
    half = tmp_path / "prepared" / "ptb.partial"
    assert (half / "train.pt").is_file() and not (half / "vocab.txt").exists()
    # a training stage pointed at the half folder refuses it
    _refused(tmp_path, "ptb", "prepared/ptb.partial has no manifest.json", "rerun `dvc repro prepare_ptb`",
             data="prepared/ptb.partial")
    # the next prepare clears it and replaces the folder as a whole
    assert _prepare(tmp_path, "ptb", tiny_ptb).returncode == 0
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == ["ptb"]
    assert (out / "vocab.txt").read_text().count("\n") == 5 and (out / "manifest.json").is_file()
