"""Killed and rerun: a stage killed (SIGKILL, as a crash or an out-of-memory kill would) at three
points of the flow resumes from its last saved epoch or iteration and writes exactly what an
uninterrupted run writes; and two runs of the same command agree bit for bit."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from faults.harness import run_stage, timed, training_args
from helpers import ROOT, tiny_params_file, tiny_prepared_ptb

EXTRA = {"train": {"ptb": {"train_tokens": None}}, "baseline": {"ptb": {"epochs": 3}},
         "prune_rows": {"ptb": {"max_iterations": 3}},
         "prune_weights": {"ptb": {"max_iterations": 3, "decoder": False}}}

# stage -> its arguments past the common ones, and the resume file that marks "one round saved"
POINTS = {
    "baseline": ([], "ptb_baseline.pt"),
    "prune_rows": (["--input", "models/grow.pt", "--baseline", "metrics/baseline.json",
                    "--log", "metrics/prune_rows_log.csv"], "ptb_prune_rows.pt"),
    "prune_weights": (["--input", "models/grow.pt", "--baseline", "metrics/baseline.json", "--profile", "profile",
                       "--export", "models/final_export.pt", "--log", "metrics/prune_weights_log.csv"],
                      "ptb_prune_weights.pt"),
}


def _command(cwd, name: str) -> list[str]:
    params = tiny_params_file(cwd, EXTRA)
    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *training_args("ptb", name), *POINTS[name][0],
            "--params", str(params)]


def _run(cwd, name: str) -> None:
    proc = subprocess.run(_command(cwd, name), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _kill_after_first_save(cwd, name: str) -> None:
    """Start the stage, SIGKILL it once its resume file exists (one round saved, more to go)."""
    marker = cwd / ".resume" / POINTS[name][1]
    proc = subprocess.Popen(_command(cwd, name), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before it could be killed mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (cwd / "models" / f"{name}.pt").exists(), "a killed stage wrote its output"


def _outputs(cwd, name: str) -> tuple[dict, dict]:
    metrics = json.loads((cwd / "metrics" / f"{name}.json").read_text())
    metrics = {k: v for k, v in metrics.items() if k != "seconds" and not timed(k)}  # wall time, timings
    return metrics, torch.load(cwd / "models" / f"{name}.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    tiny_prepared_ptb(root / "data")
    proc = run_stage(root, "measure_profile", "ptb", "--out", "profile", "--metrics", "metrics/profile.json",
                     extra=EXTRA)
    assert proc.returncode == 0, proc.stderr
    for name, args in (("baseline", []), ("grow", ["--log", "metrics/grow_log.csv"])):
        proc = run_stage(root, name, *training_args("ptb", name), *args, extra=EXTRA)
        assert proc.returncode == 0, proc.stderr
    return root


def _copy(built, tmp_path, label: str, without: str):
    folder = tmp_path / label
    shutil.copytree(built, folder)
    for path in (folder / "models" / f"{without}.pt", folder / "metrics" / f"{without}.json"):
        path.unlink(missing_ok=True)
    return folder


@pytest.mark.parametrize("name", list(POINTS))
def test_a_killed_stage_resumes_to_exactly_the_uninterrupted_result(built, tmp_path, name):
    reference, killed = _copy(built, tmp_path, "reference", name), _copy(built, tmp_path, "killed", name)
    _run(reference, name)
    _kill_after_first_save(killed, name)
    _run(killed, name)
    (ref_metrics, ref_state), (metrics, state) = _outputs(reference, name), _outputs(killed, name)
    assert metrics == ref_metrics
    assert state.keys() == ref_state.keys()
    for key, value in ref_state.items():
        assert torch.equal(state[key], value), key
    assert not (killed / ".resume" / POINTS[name][1]).exists()  # finished: the progress file is gone


def test_two_runs_of_the_same_command_agree_bit_for_bit(built, tmp_path):
    first, second = _copy(built, tmp_path, "first", "baseline"), _copy(built, tmp_path, "second", "baseline")
    for folder in (first, second):
        _run(folder, "baseline")
    assert (first / "models/baseline.pt").read_bytes() == (second / "models/baseline.pt").read_bytes()
    assert _outputs(first, "baseline")[0] == _outputs(second, "baseline")[0]
