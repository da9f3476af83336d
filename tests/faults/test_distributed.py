"""Several training processes (torchrun, DistributedDataParallel, gloo on the CPU) give the model
and metrics of one process with the same global batch: masks identical, growth gradients
all-reduced, rank 0 alone writing, a killed run resuming, bad counts refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from faults.harness import assert_refused, run_stage, timed, training_args
from helpers import ROOT, tiny_params_file, tiny_prepared_ptb

# Dropout off: with it each process draws its own noise for its share, which one process cannot
# reproduce; everything else is deterministic, so the runs must agree to float rounding.
NO_DROPOUT = {"model": {"ptb": {"dropout_gate": 0.0, "dropout_embed": 0.0, "dropout_words": 0.0}},
              "baseline": {"ptb": {"dropout": 0.0, "dropout_words": 0.0}},
              "prune_weights": {"ptb": {"decoder": False}}}

# stage -> its arguments past the common ones (inputs under models/ and metrics/ of the folder)
ARGS = {
    "baseline": [],
    "grow": ["--log", "metrics/grow_log.csv"],
    "prune_rows": ["--input", "models/grow.pt", "--baseline", "metrics/baseline.json",
                   "--log", "metrics/prune_rows_log.csv"],
    "grow_lhp": ["--input", "models/prune_rows.pt", "--fallback", "models/grow.pt", "--profile", "profile"],
    "prune_weights": ["--input", "models/grow_lhp.pt", "--baseline", "metrics/baseline.json",
                      "--profile", "profile", "--export", "models/final_export.pt",
                      "--log", "metrics/prune_weights_log.csv"],
}


def _extra(processes: int, **more) -> dict:
    extra = json.loads(json.dumps(NO_DROPOUT))
    extra["train"] = {"ptb": {"processes": processes, **more}}
    return extra


def _stage(cwd, name: str, processes: int, **more) -> subprocess.CompletedProcess:
    return run_stage(cwd, name, *training_args("ptb", name), *ARGS[name], extra=_extra(processes, **more))


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr


def _metrics(folder, name: str) -> dict:
    out = json.loads((folder / "metrics" / f"{name}.json").read_text())
    return {k: v for k, v in out.items() if k not in ("seconds", "processes") and not _timed(k)}


def _timed(key: str) -> bool:
    """Keys that timings decide (rank 0 measured them): the harness's, and the export's formats."""
    return timed(key) or key.startswith(("formats.", "decoder_format"))


def _state(folder, name: str) -> dict:
    return torch.load(folder / "models" / f"{name}.pt", weights_only=True)["state_dict"]


def _assert_same_model(one, two, name: str) -> None:
    """Masks and every metric as one process's; weights to rounding: two shares' sums round
    differently from the whole batch's (batch losses agree to ~1e-6), and 150 steps at the tiny
    config's rate 5 carry that to ~1e-4 in weights the scores do not feel."""
    a, b = _state(one, name), _state(two, name)
    assert a.keys() == b.keys()
    for key in a:
        if "mask" in key:  # masks are decisions: equal exactly
            assert torch.equal(a[key], b[key]), key
        else:
            assert torch.allclose(a[key].double(), b[key].double(), rtol=1e-3, atol=1e-3), key
    ma, mb = _metrics(one, name), _metrics(two, name)
    assert ma.keys() == mb.keys()
    for key, value in ma.items():
        if isinstance(value, float):
            assert mb[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
        else:
            assert mb[key] == value, key


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    """The training stages run once with one process and once with two, from the same data and
    profile; grow_lhp's timings pick between models, so prune_weights of both starts from the
    one-process grow_lhp output (its own timings only pick the export's formats)."""
    root = tmp_path_factory.mktemp("distributed")
    tiny_prepared_ptb(root / "data")
    _ok(run_stage(root, "measure_profile", "ptb", "--out", "profile", "--metrics", "metrics/profile.json",
                  extra=NO_DROPOUT))
    folders = {}
    for n in (1, 2):
        folder = folders[n] = root / f"processes{n}"
        shutil.copytree(root / "data", folder / "data")
        shutil.copytree(root / "profile", folder / "profile")
        for name in ("baseline", "grow", "prune_rows", "grow_lhp"):
            _ok(_stage(folder, name, n))
    shutil.copy(folders[1] / "models" / "grow_lhp.pt", folders[2] / "models" / "grow_lhp.pt")
    for n in (1, 2):
        _ok(_stage(folders[n], "prune_weights", n))
    return folders


@pytest.mark.parametrize("name", ["baseline", "grow", "prune_rows", "prune_weights"])
def test_two_processes_train_the_model_of_one_with_the_same_global_batch(flows, name):
    _assert_same_model(flows[1], flows[2], name)
    assert json.loads((flows[2] / "metrics" / f"{name}.json").read_text())["processes"] == 2


def test_two_processes_grow_to_the_latency_points_and_write_once(flows):
    folder = flows[2]
    metrics = json.loads((folder / "metrics" / "grow_lhp.json").read_text())
    assert metrics["processes"] == 2 and metrics["decision.mode"] in ("sparse", "dense")
    history = (folder / "plots" / "grow_lhp.csv").read_text().splitlines()
    assert len(history) == len(set(history))  # one writer: no row twice
    assert not list((folder / ".resume").glob("*")), "a finished stage left progress behind"


def _command(folder, name: str, processes: int) -> list[str]:
    params = tiny_params_file(folder, _extra(processes))
    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *training_args("ptb", name), *ARGS[name],
            "--params", str(params)]


def test_two_processes_killed_mid_run_resume_to_the_uninterrupted_result(flows, tmp_path):
    """SIGKILL to the launcher and its ranks after the first saved epoch; the rerun resumes
    (every rank from its own RNG state) and writes what an uninterrupted run wrote."""
    folder = tmp_path / "killed"
    shutil.copytree(flows[2], folder)
    (folder / "models" / "grow.pt").unlink()
    marker = folder / ".resume" / "ptb_grow.pt"
    proc = subprocess.Popen(_command(folder, "grow", 2), cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before it could be killed mid-run"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (folder / "models" / "grow.pt").exists(), "a killed stage wrote its output"
    rerun = subprocess.run(_command(folder, "grow", 2), cwd=folder, capture_output=True, text=True, timeout=300)
    _ok(rerun)
    assert _metrics(folder, "grow") == _metrics(flows[2], "grow")
    for key, value in _state(flows[2], "grow").items():
        assert torch.equal(_state(folder, "grow")[key], value), key


def test_more_processes_than_the_batch_is_refused_in_one_line(flows, tmp_path):
    folder = tmp_path / "wide"
    shutil.copytree(flows[1] / "data", folder / "data")
    proc = _stage(folder, "baseline", 8, batch=4)
    assert_refused(proc, "train.ptb.batch (4) is smaller than train.ptb.processes (8)")


def test_an_error_in_the_ranks_reaches_the_user_as_one_line(flows, tmp_path):
    """Both ranks fail on missing data; the launcher's report of failed ranks is not shown."""
    folder = tmp_path / "nodata"
    folder.mkdir()
    assert_refused(_stage(folder, "baseline", 2), "data")


def test_torchrun_with_another_count_than_the_params_is_refused(flows, tmp_path):
    folder = tmp_path / "torchrun"
    shutil.copytree(flows[1] / "data", folder / "data")
    params = tiny_params_file(folder, _extra(1))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(ROOT / "stages" / "baseline.py"), *training_args("ptb", "baseline"), "--params", str(params)]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    assert "error: torchrun started 2 processes but train.ptb.processes is 1" in proc.stderr
    assert not (folder / "models" / "baseline.pt").exists()
