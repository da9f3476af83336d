"""The prepare stage end to end on tiny data: outputs, and errors raised before any output."""

import copy
import json
import subprocess
import sys

import pytest
import torch
import yaml

from helpers import ROOT, merge

STAGE = ROOT / "stages" / "prepare.py"


def run_stage(tmp_path, task, prepare_params, sums):
    params = tmp_path / "params.yaml"  # the repository's prepare section, the test's over it
    prepare = merge(yaml.safe_load((ROOT / "params.yaml").read_text())["prepare"], copy.deepcopy(prepare_params))
    params.write_text(yaml.safe_dump({"prepare": prepare}))
    out = tmp_path / "out" / task
    metrics = tmp_path / "metrics" / f"{task}.json"
    cmd = [sys.executable, str(STAGE), task, "--params", str(params), "--out", str(out),
           "--metrics", str(metrics), "--sums", str(sums), "--downloads", str(tmp_path / "dl")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    return proc, out, metrics


def test_ptb_outputs(tmp_path, tiny_ptb):
    proc, out, metrics = run_stage(tmp_path, "ptb", tiny_ptb["params"], tiny_ptb["sums"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(metrics.read_text())["train_tokens"] == 14
    tokens = torch.load(out / "train.pt", weights_only=True)
    assert tokens.shape == (14,)
    assert len((out / "vocab.txt").read_text().split()) == 9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "ptb" and manifest["format"] == 1
    assert sorted(manifest["files"]) == ["test.pt", "train.pt", "valid.pt", "vocab.txt"]
    assert manifest["files"]["vocab.txt"]["size"] == (out / "vocab.txt").stat().st_size
    assert sorted(p.name for p in out.parent.iterdir()) == ["ptb"]  # nothing left aside


def test_an4_outputs(tmp_path, tiny_an4):
    proc, out, metrics = run_stage(tmp_path, "an4", tiny_an4["params"], tiny_an4["sums"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(metrics.read_text())
    assert (result["train_utterances"], result["valid_utterances"]) == (2, 1) and result["feature_dim"] == 13
    assert (out / "manifest.csv").read_text().startswith("split,utterance,speaker,seconds,frames")
    packed = torch.load(out / "test.pt", weights_only=True)
    assert packed["utterances"] == ["an9-spk3-b"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "an4"
    assert sorted(manifest["files"]) == ["labels.txt", "manifest.csv", "test.pt", "train.pt", "valid.pt"]


def _break(kind, fixture, tmp_path):
    """Mutate a tiny dataset or its params into one of the user errors."""
    params = json.loads(json.dumps(fixture["params"]))
    if kind == "missing dir":
        params["source"] = str(tmp_path / "absent")
    elif kind == "bad type":
        params["ptb"]["vocab_size"] = "big"
    elif kind == "out of range":
        params["ptb"]["vocab_size"] = 0
    elif kind == "unknown key":
        params["ptb"]["vocab"] = 5
    elif kind == "checksum":
        (fixture["folder"] / "ptb.test.txt").write_text("changed\n")
    elif kind == "count":
        params["ptb"]["expected_tokens"] = [1, 4, 4]
    return params


@pytest.mark.parametrize("kind, words", [
    ("missing dir", "absent/ptb does not exist"),
    ("bad type", "'prepare.ptb.vocab_size' is 'big' (str)"),
    ("out of range", "'prepare.ptb.vocab_size' is 0, out of range"),
    ("unknown key", "unknown key 'prepare.ptb.vocab'"),
    ("checksum", "checksum mismatch for"),
    ("count", "has 14 tokens, expected 1"),
])
def test_errors_are_one_line_and_write_nothing(tmp_path, tiny_ptb, kind, words):
    params = _break(kind, tiny_ptb, tmp_path)
    proc, out, metrics = run_stage(tmp_path, "ptb", params, tiny_ptb["sums"])
    assert proc.returncode == 2
    assert words in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert not out.exists() and not metrics.exists()


def test_unknown_task(tmp_path, tiny_ptb):
    proc, out, metrics = run_stage(tmp_path, "timit", tiny_ptb["params"], tiny_ptb["sums"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1  # the registry's one-line error
    assert "unknown task 'timit'" in proc.stderr and "use one of: ptb, an4" in proc.stderr
    assert not out.exists() and not metrics.exists()


def test_preparation_comes_through_the_registry_and_loads_only_that_task(tmp_path, tiny_ptb):
    # What dvc.yaml relies on: preparing PTB runs neither the AN4 code nor any model code.
    params, sums = {"prepare": tiny_ptb["params"]}, str(tiny_ptb["sums"])
    code = f"""
import sys
from pathlib import Path
from symbiotic.data.prepare import prepare_task
prepare_task("ptb", {params!r}, Path("out"), Path("m.json"), Path({sums!r}), Path("dl"))
print(" ".join(sorted(m for m in sys.modules if m.startswith("symbiotic."))))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert {"symbiotic.tasks.ptb_prepare", "symbiotic.data.ptb"} <= loaded
    assert not loaded & {"symbiotic.tasks.ptb", "symbiotic.data.an4", "symbiotic.tasks.an4_prepare"}
    assert not any(m.startswith("symbiotic.models") for m in loaded)
    assert (tmp_path / "out" / "vocab.txt").is_file()


def test_truncated_audio_is_named(tmp_path, tiny_an4):
    # The sums are rewritten so that the check that fails is the audio reader's own.
    from helpers import write_sums

    victim = tiny_an4["folder"] / "wav/an4_clstk/spk1/an2-spk1-b.sph"
    victim.write_bytes(victim.read_bytes()[:2000])
    names = [line.split()[1] for line in tiny_an4["sums"].read_text().splitlines()]
    write_sums(tiny_an4["folder"], names, tiny_an4["sums"])
    proc, out, _ = run_stage(tmp_path, "an4", tiny_an4["params"], tiny_an4["sums"])
    assert proc.returncode == 2
    assert "an2-spk1-b.sph is unreadable: truncated" in proc.stderr
    assert not out.exists()


def test_source_data_untouched(tmp_path, tiny_an4):
    before = {p: p.read_bytes() for p in tiny_an4["folder"].rglob("*") if p.is_file()}
    proc, _, _ = run_stage(tmp_path, "an4", tiny_an4["params"], tiny_an4["sums"])
    assert proc.returncode == 0, proc.stderr
    after = {p: p.read_bytes() for p in tiny_an4["folder"].rglob("*") if p.is_file()}
    assert before == after


# ---- the prepared folder is replaced as a whole (data/prepared.py) ----------------------------
def _write(files):
    def write(folder):
        for name, text in files.items():
            (folder / name).write_text(text)
        return "done"
    return write


def _fail(folder):
    (folder / "a.txt").write_text("new")
    raise KeyboardInterrupt  # e.g. Ctrl-C midway


def test_a_rebuild_replaces_the_whole_folder(tmp_path):
    from symbiotic.data import prepared

    out = tmp_path / "prepared" / "ptb"
    assert prepared.build(out, "ptb", _write({"a.txt": "1", "stale.txt": "old"})) == "done"
    prepared.build(out, "ptb", _write({"a.txt": "2"}))
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "manifest.json"]  # no stale file kept
    assert sorted(p.name for p in out.parent.iterdir()) == ["ptb"]
    assert prepared.check(out, "ptb", ["a.txt"])["files"]["a.txt"]["size"] == 1


def test_a_failed_build_keeps_the_old_folder_and_leaves_nothing_aside(tmp_path):
    from symbiotic.data import prepared

    out = tmp_path / "ptb"
    prepared.build(out, "ptb", _write({"a.txt": "1"}))
    with pytest.raises(KeyboardInterrupt):
        prepared.build(out, "ptb", _fail)
    assert (out / "a.txt").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["ptb"]
    prepared.check(out, "ptb", ["a.txt"])


def test_a_build_killed_between_the_renames_is_recovered_by_the_next(tmp_path):
    from symbiotic.data import prepared

    out = tmp_path / "ptb"
    prepared.build(out, "ptb", _write({"a.txt": "1"}))
    out.rename(tmp_path / "ptb.old")  # the old folder aside, the new one not yet renamed in
    (tmp_path / "ptb.partial").mkdir()
    with pytest.raises(KeyboardInterrupt):
        prepared.build(out, "ptb", _fail)
    assert (out / "a.txt").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["ptb"]
