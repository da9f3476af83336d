"""Fault injection into the profile that grow_lhp and prune_weights read: another machine's
(device kind, CPU model, threads, torch version), another task's, and broken files. Every
refusal is checked against the error contract (exit 2, one ``error:`` line naming the field and
the fix) and against the outputs that were there before (unchanged, nothing new written); with
``profile.accept_foreign: true`` another machine's profile is used, with one warning line and
the difference in the stage's metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from faults.harness import assert_refused, assert_unchanged, fingerprint, run_stage, training_args
from helpers import ROOT, tiny_params_file, tiny_prepared_ptb

# The tiny PTB flow of tests/helpers.py TINY_PARAMS, shortened: its threshold is a set value (so no
# baseline is trained; a baseline metrics file stands in), one epoch of step (a), one pruning iteration
# of the recurrent matrices.
EXTRA = {"train": {"ptb": {"train_tokens": None, "diverge_window": 10}},
         "grow": {"ptb": {"growth_epochs": 1, "epochs": 1}},
         "prune_weights": {"ptb": {"max_iterations": 1, "decoder": False}}}
ACCEPT = {"profile": {"accept_foreign": True}}
# Step (a)'s model is the input of both (it is an H-LSTM checkpoint of the task, all they need).
INPUTS = {"grow_lhp": ["--input", "models/grow.pt", "--fallback", "models/grow.pt", "--profile", "profile"],
          "prune_weights": ["--input", "models/grow.pt", "--baseline", "metrics/baseline.json",
                            "--profile", "profile", "--export", "models/prune_weights_export.pt",
                            "--log", "metrics/prune_weights_log.csv"]}
OUTPUTS = {"grow_lhp": ["models/grow_lhp.pt", "metrics/grow_lhp.json", "plots/grow_lhp.csv"],
           "prune_weights": ["models/prune_weights.pt", "models/prune_weights_export.pt",
                             "metrics/prune_weights.json", "plots/prune_weights.csv", "metrics/prune_weights_log.csv"]}
GPU = {"device": "cuda", "gpu_name": "NVIDIA H200", "cudnn_version": 91002}  # as a CUDA profile records it


def _step(cwd, name: str, *args: str, extra: dict | None = None):
    return run_stage(cwd, name, *training_args("ptb", name), *args, extra={**EXTRA, **(extra or {})})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Prepared data, this machine's PTB profile, the repository's AN4 profile (another task's)
    and step (a)'s model, once; every output of both stages exists already (an earlier run's), so
    a refused run has outputs to leave alone."""
    root = tmp_path_factory.mktemp("profile_faults")
    tiny_prepared_ptb(root / "data")
    shutil.copytree(ROOT / "profiles/an4", root / "an4_profile")
    for proc in (run_stage(root, "measure_profile", "ptb", "--out", "profile", "--metrics", "metrics/profile.json",
                           extra=EXTRA),
                 _step(root, "grow", "--log", "metrics/grow_log.csv")):
        assert proc.returncode == 0, proc.stderr
    (root / "metrics/baseline.json").write_text(json.dumps({"test_perplexity": 1.0e9, "valid_perplexity": 1.0e9}))
    for path in OUTPUTS["grow_lhp"] + OUTPUTS["prune_weights"]:
        (root / path).write_text("an earlier run's output\n")
    return root


@pytest.fixture
def flow(built, tmp_path):
    """A private copy of the built flow."""
    shutil.copytree(built, tmp_path / "flow")
    return tmp_path / "flow"


def _edit(flow, name: str, change) -> None:
    """Rewrite profile/<name> (JSON) with ``change(document)``."""
    path = flow / "profile" / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _measured_with(**fields):
    """A tampering: device.json says ``fields`` (lhp.json's copies of device and threads follow)."""
    def tamper(flow):
        _edit(flow, "device.json", lambda fp: {**fp, **fields})
        _edit(flow, "lhp.json", lambda doc: {**doc, **{k: v for k, v in fields.items() if k in ("device", "threads")}})
    return tamper


def _write(name: str, text: str):
    return lambda flow: (flow / "profile" / name).write_text(text)


def _remove(name: str):
    return lambda flow: (flow / "profile" / name).unlink()


def _other_task(flow):
    shutil.rmtree(flow / "profile")
    shutil.copytree(flow / "an4_profile", flow / "profile")


def _without_dimensions(flow):
    _edit(flow, "lhp.json", lambda doc: {k: v for k, v in doc.items() if k != "dimensions"})


# (stage, tampering, fragments the one error line must hold); each stage meets several.
CASES = {
    "cuda_profile_grow_lhp": ("grow_lhp", _measured_with(**GPU), ("device is 'cuda' there, 'cpu' here",
                                                                  "dvc repro -f profile@ptb",
                                                                  "profile.accept_foreign: true")),
    "cuda_profile_prune_weights": ("prune_weights", _measured_with(**GPU), ("device is 'cuda'", "profile@ptb")),
    "other_cpu_model": ("prune_weights", _measured_with(cpu_model="Acme RISC-V 9000"),
                        ("cpu_model is 'Acme RISC-V 9000' there", "accept_foreign")),
    "other_thread_count": ("grow_lhp", _measured_with(threads=97), ("threads is 97 there", "profile.measure.threads")),
    "other_torch_version": ("prune_weights", _measured_with(torch_version="1.13.0"),
                            ("torch_version is '1.13.0' there",)),
    "other_task": ("grow_lhp", _other_task, ("made for task 'an4'", "not 'ptb'", "profiles/ptb")),
    "lhp_json_a_list": ("prune_weights", _write("lhp.json", "[]"), ("lhp.json holds a list", "profile@ptb")),
    "lhp_json_empty_mapping": ("grow_lhp", _write("lhp.json", "{}"), ("lhp.json lacks 'task'",)),
    "lhp_json_without_dimensions": ("prune_weights", _without_dimensions, ("lhp.json lacks 'dimensions'",)),
    "latency_csv_missing": ("grow_lhp", _remove("latency.csv"), ("latency.csv is missing",)),
    "latency_csv_empty": ("prune_weights", _write("latency.csv", ""), ("latency.csv is empty",)),
    "device_json_missing": ("grow_lhp", _remove("device.json"), ("device.json is missing", "profile@ptb")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_foreign_or_broken_profile_is_refused(flow, case):
    stage, tamper, fragments = CASES[case]
    tamper(flow)
    before = fingerprint(flow)
    assert_refused(_step(flow, stage, *INPUTS[stage]), *fragments)
    assert_unchanged(before, flow)


def test_accept_foreign_uses_a_cuda_profile_with_a_warning(flow):
    _measured_with(**GPU)(flow)
    for stage in ("grow_lhp", "prune_weights"):
        proc = _step(flow, stage, *INPUTS[stage], extra=ACCEPT)
        assert proc.returncode == 0, proc.stderr
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "device: cuda != cpu" in warnings[0], proc.stderr
        assert "profile.accept_foreign" in warnings[0]
        metrics = json.loads((flow / f"metrics/{stage}.json").read_text())
        assert metrics["profile_mismatch"] == "device: cuda != cpu"


# ---- a profile measured on the deployment target (profile.imported) -------------------------
def _target_profile(flow, **fields):
    """`python -m symbiotic.profile_target ptb` run in an empty folder (no data, no DVC), its
    device.json then made another machine's with ``fields`` (as if measured there)."""
    where = flow / "target_machine"
    where.mkdir()
    params = tiny_params_file(where, EXTRA)
    proc = subprocess.run([sys.executable, "-m", "symbiotic.profile_target", "ptb", "--out", "target-profile",
                           "--params", str(params)], capture_output=True, text=True, cwd=where, timeout=300)
    assert proc.returncode == 0, proc.stderr
    folder = where / "target-profile" / "ptb"
    for name, change in (("device.json", lambda fp: {**fp, **fields}),
                         ("lhp.json", lambda doc: {**doc, **{k: v for k, v in fields.items() if k == "device"}})):
        (folder / name).write_text(json.dumps(change(json.loads((folder / name).read_text()))))
    return where / "target-profile"


def _import(flow, source, **profile):
    extra = {"profile": {"imported": str(source), **profile}}
    return run_stage(flow, "measure_profile", "ptb", "--out", "profile", "--metrics", "metrics/profile.json",
                     extra={**EXTRA, **extra}), extra


def test_a_target_profile_is_imported_and_used_with_its_machine_named(flow):
    source = _target_profile(flow, cpu_model="Acme deploy CPU")
    proc, extra = _import(flow, source)
    assert proc.returncode == 0, proc.stderr
    for name in ("lhp.json", "device.json", "latency.csv", "sparse.csv", "lhe.png"):
        assert (flow / "profile" / name).read_bytes() == (source / "ptb" / name).read_bytes(), name
    metrics = json.loads((flow / "metrics/profile.json").read_text())
    assert metrics["imported_from"] == str(source) and "|" in metrics["measured_on"]
    step = _step(flow, "grow_lhp", *INPUTS["grow_lhp"], extra=extra)
    assert step.returncode == 0, step.stderr
    assert json.loads((flow / "metrics/grow_lhp.json").read_text())["profile_mismatch"].startswith(
        "cpu_model: Acme deploy CPU != ")  # the target's CPU, not this one's, decided step (c)


def test_a_target_profile_of_another_device_kind_is_refused_unless_accepted(flow):
    source = _target_profile(flow, **GPU)
    before = fingerprint(flow)
    proc, _ = _import(flow, source)
    assert_refused(proc, "was measured on device 'cuda'", "params.yaml names device 'cpu'",
                   "python -m symbiotic.profile_target ptb --device cpu", "profile.accept_foreign: true")
    assert_unchanged(before, flow)
    proc, _ = _import(flow, source, accept_foreign=True)
    assert proc.returncode == 0, proc.stderr


def test_an_imported_folder_without_the_task_is_refused(flow):
    before = fingerprint(flow)
    proc, _ = _import(flow, flow / "no_such_folder")
    assert_refused(proc, "holds no ptb profile", "python -m symbiotic.profile_target ptb")
    assert_unchanged(before, flow)
