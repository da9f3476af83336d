"""A profile is checked before it is used (hardware/report.py load_profile): its structure, its
task and the machine it was measured on. In process, on copies of the repository's PTB profile
made to say they were measured here."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from helpers import ROOT
from symbiotic.errors import UserError
from symbiotic.hardware.measure import default_threads, fingerprint
from symbiotic.hardware.report import COMPARED, accept_foreign, first_difference, load_profile

CPU = torch.device("cpu")
THREADS = default_threads()
HERE = fingerprint(CPU, THREADS)


@pytest.fixture
def folder(tmp_path):
    """The repository's PTB profile, re-labelled as measured on this machine."""
    out = tmp_path / "profile"
    shutil.copytree(ROOT / "profiles/ptb", out)
    (out / "device.json").write_text(json.dumps(HERE))
    _edit(out, "lhp.json", lambda doc: {**doc, "threads": THREADS})
    return out


def _edit(folder, name: str, change) -> None:
    path = folder / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _load(folder, task: str = "ptb", accept: bool = False):
    return load_profile(folder, task=task, device=CPU, threads=THREADS, accept_foreign=accept)


def _refused(folder, *fragments: str, accept: bool = False) -> str:
    with pytest.raises(UserError) as err:
        _load(folder, accept=accept)
    message = str(err.value)
    assert "\n" not in message and " — " in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_profile_of_this_machine_and_task_is_used_as_it_is(folder, capsys):
    profile = _load(folder)
    assert profile.mismatch is None and capsys.readouterr().err == ""
    assert profile.doc["task"] == "ptb" and {"dimension", "size", "median_s", "is_lhp"} <= set(profile.latency)
    assert profile.device == HERE


# ---- the machine -----------------------------------------------------------------------------
def test_hostname_platform_and_python_are_not_compared():
    other = {**HERE, "hostname": "elsewhere", "platform": "Plan 9", "python_version": "2.7"}
    assert first_difference(other, HERE) is None


def test_the_device_kind_is_compared_first():
    gpu = {**HERE, "device": "cuda", "gpu_name": "NVIDIA H200", "cpu_model": "another", "threads": 99}
    assert first_difference(gpu, HERE) == ("device", "cuda", "cpu")


@pytest.mark.parametrize("field", COMPARED["cpu"])
def test_every_latency_field_of_a_cpu_is_compared(field):
    assert first_difference({**HERE, field: "changed"}, HERE) == (field, "changed", HERE[field])


def test_a_gpu_compares_its_own_fields_and_not_the_host_cpu():
    gpu = {**HERE, "device": "cuda", "gpu_name": "NVIDIA H200", "cudnn_version": 91002}
    assert first_difference({**gpu, "cpu_model": "another host"}, gpu) is None
    assert first_difference({**gpu, "gpu_name": "NVIDIA A100"}, gpu) == ("gpu_name", "NVIDIA A100", "NVIDIA H200")
    assert first_difference({**gpu, "cudnn_version": 8000}, gpu) == ("cudnn_version", 8000, 91002)


def test_a_field_the_profile_lacks_is_a_difference():
    assert first_difference({k: v for k, v in HERE.items() if k != "mkl_version"}, HERE)[0] == "mkl_version"


def test_another_machine_is_refused_with_both_values_and_the_fixes(folder):
    _edit(folder, "device.json", lambda fp: {**fp, "cpu_model": "Acme 9000"})
    message = _refused(folder, f"cpu_model is 'Acme 9000' there, {HERE['cpu_model']!r} here",
                       "dvc repro -f profile@ptb", "profile.accept_foreign: true")
    assert message.startswith(f"the profile in {folder} was measured on another machine")


def test_a_thread_mismatch_says_which_threads_to_profile_with(folder):
    _edit(folder, "device.json", lambda fp: {**fp, "threads": THREADS + 5})
    _edit(folder, "lhp.json", lambda doc: {**doc, "threads": THREADS + 5})
    _refused(folder, f"threads is {THREADS + 5} there, {THREADS} here", f"profile.measure.threads: null or {THREADS}")


def test_accept_foreign_uses_another_machine_with_one_warning(folder, capsys):
    _edit(folder, "device.json", lambda fp: {**fp, "torch_version": "1.13.0"})
    profile = _load(folder, accept=True)
    assert profile.mismatch == f"torch_version: 1.13.0 != {HERE['torch_version']}"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and profile.mismatch in err[0]


# ---- the task and the structure: always refused ----------------------------------------------
def test_another_task_is_refused_even_when_foreign_profiles_are_accepted(folder):
    _edit(folder, "lhp.json", lambda doc: {**doc, "task": "an4"})
    _refused(folder, "made for task 'an4'", "not 'ptb'", accept=True)


def _drop(key):
    return lambda doc: {k: v for k, v in doc.items() if k != key}


def _crossover(**values):
    return lambda doc: {**doc, "sparse_crossover": {**doc["sparse_crossover"], **values}}


def _dimension(name, **values):
    return lambda doc: {**doc, "dimensions": {**doc["dimensions"], name: values or "flat"}}


@pytest.mark.parametrize("change, fragment", [
    (lambda doc: [doc], "lhp.json holds a list"),
    (lambda doc: {}, "lhp.json lacks 'task'"),
    (_drop("seq_len"), "lhp.json lacks 'seq_len'"),
    (lambda doc: {**doc, "batch": "16"}, "lhp.json 'batch' is '16', not a positive integer"),
    (lambda doc: {**doc, "batch": True}, "lhp.json 'batch' is True"),
    (lambda doc: {**doc, "device": "tpu"}, "lhp.json 'device' is 'tpu', not one of cpu, cuda"),
    (_drop("sparse_crossover"), "lhp.json lacks 'sparse_crossover'"),
    (lambda doc: {**doc, "sparse_crossover": {k: v for k, v in doc["sparse_crossover"].items() if k != "u_h"}},
     "'sparse_crossover' lacks 'u_h'"),
    (_crossover(w="0.8"), "'sparse_crossover.w' is '0.8', not a sparsity"),
    (_crossover(decoder=1.5), "'sparse_crossover.decoder' is 1.5"),
    (lambda doc: {**doc, "dimensions": {}}, "lhp.json 'dimensions' is {}"),
    (lambda doc: {**doc, "dimensions": {k: v for k, v in doc["dimensions"].items() if k != "input"}},
     "'dimensions' lacks 'input', which ptb prunes"),
    (_dimension("hidden"), "'dimensions.hidden' is 'flat', not a mapping"),
    (_dimension("hidden", dims=[16, 32]), "'dimensions.hidden.lhps' is None, not a list of widths"),
    (lambda doc: {**doc, "threads": doc["threads"] + 1}, "lhp.json says threads"),
])
def test_a_broken_lhp_json_is_refused_even_when_foreign_profiles_are_accepted(folder, change, fragment):
    _edit(folder, "lhp.json", change)
    message = _refused(folder, fragment, "dvc repro -f profile@ptb", accept=True)
    assert "is unusable" in message or "lacks 'task'" in message


def _table(change):
    def apply(folder):
        path = folder / "latency.csv"
        change(pd.read_csv(path)).to_csv(path, index=False)
    return apply


@pytest.mark.parametrize("change, fragment", [
    (_table(lambda t: t.drop(columns=["is_lhp", "median_s"])), "latency.csv lacks the column(s) median_s, is_lhp"),
    (_table(lambda t: t.iloc[:0]), "latency.csv has no rows"),
    (_table(lambda t: t[t["dimension"] != "input"]), "latency.csv has no rows for dimension 'input'"),
    (_table(lambda t: t.assign(size=t["size"] + 0.5)), "'size' holds values that are not integer widths"),
    (_table(lambda t: t.assign(median_s="fast")), "'median_s' holds values that are not numbers"),
    (_table(lambda t: t.assign(is_lhp="yes")), "'is_lhp' holds values that are not True/False"),
    (lambda f: (f / "latency.csv").write_text(""), "latency.csv is empty"),
    (lambda f: (f / "latency.csv").unlink(), "latency.csv is missing"),
    (lambda f: (f / "device.json").write_text("[]"), "device.json holds a list"),
    (lambda f: (f / "device.json").write_text("{"), "device.json is not valid JSON"),
    (lambda f: (f / "lhp.json").unlink(), "lhp.json is missing"),
])
def test_broken_files_are_refused(folder, change, fragment):
    change(folder)
    _refused(folder, "is unusable", fragment, "re-profile", accept=True)


def test_a_missing_folder_says_to_run_the_profile_stage(folder):
    shutil.rmtree(folder)
    _refused(folder, "there is no profile folder", "dvc repro profile@ptb")


# ---- the param ------------------------------------------------------------------------------
@pytest.mark.parametrize("profile, expected", [
    ({"accept_foreign": False, "imported": None}, False), ({"accept_foreign": True, "imported": None}, True),
    ({"accept_foreign": False, "imported": "target-profile"}, True),  # measured elsewhere on purpose
])
def test_accept_foreign_is_read_from_the_profile_section(profile, expected):
    assert accept_foreign({"profile": profile}) is expected


@pytest.mark.parametrize("profile, words", [
    ({}, "params.yaml lacks 'profile.accept_foreign'"),
    ({"accept_foreign": "yes", "imported": None}, "'profile.accept_foreign' is 'yes' (str) — give a bool"),
    ({"accept_foreign": 1, "imported": None}, "'profile.accept_foreign' is 1 (int)"),
    ({"accept_foreign": False}, "params.yaml lacks 'profile.imported'"),
    ({"accept_foreign": False, "imported": 3}, "'profile.imported' is 3 (int)"),
    (None, "'profile' must be a mapping"),
])
def test_accept_foreign_must_be_a_bool(profile, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        accept_foreign({"profile": profile})


def test_params_yaml_keeps_foreign_profiles_refused():
    from symbiotic.config import load_params

    assert accept_foreign(load_params(ROOT / "params.yaml")) is False


def test_the_target_command_refuses_an_unknown_task_before_measuring(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "symbiotic.profile_target", "ptb", "tpu_task", "--out",
                           str(tmp_path / "out"), "--params", str(ROOT / "params.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown task 'tpu_task'"), proc.stderr
    assert not (tmp_path / "out").exists()
