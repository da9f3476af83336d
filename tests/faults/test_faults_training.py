"""Fault injection into the training stages: checkpoints, numerical faults, empty work,
unreachable thresholds and exported models. Every refusal is checked against the error
contract (exit 2, one ``error:`` line naming the problem and the fix) and against the outputs
that were there before (unchanged, nothing new written)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from faults.harness import assert_refused, assert_unchanged, fingerprint, run_stage, training_args
from helpers import tiny_prepared_ptb

# The tiny PTB flow's params: one layer, a few hundred windows (tests/helpers.py TINY_PARAMS).
# A short divergence window: the tiny epochs have 50 batches.
EXTRA = {"train": {"ptb": {"train_tokens": None, "diverge_window": 10}}}
UNREACHABLE = {"threshold": {"ptb": {"value": 1.0}}}  # perplexity 1: no model reaches it


def _step(cwd, name: str, *args: str, extra: dict | None = None):
    return run_stage(cwd, name, *training_args("ptb", name), *args, extra={**EXTRA, **(extra or {})})


def _prune_rows(cwd, source: str = "models/grow.pt", extra: dict | None = None):
    return _step(cwd, "prune_rows", "--input", source, "--baseline", "metrics/baseline.json",
                 "--log", "metrics/prune_rows_log.csv", extra=extra)


def _prune_weights(cwd, source: str = "models/grow.pt", extra: dict | None = None):
    return _step(cwd, "prune_weights", "--input", source, "--baseline", "metrics/baseline.json",
                 "--profile", "profile", "--export", "models/final_export.pt",
                 "--log", "metrics/prune_weights_log.csv", extra=extra)


def _evaluate(cwd):
    return run_stage(cwd, "evaluate", "ptb", "--data", "data", "--models", "models",
                     "--export", "models/final_export.pt", "--table", "steps.csv", "--summary", "summary.json",
                     "--plot", "tradeoff.png", "--profile", "profile", extra=EXTRA)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Prepared data, profile, baseline, step (a) and a whole flow up to the export, once."""
    root = tmp_path_factory.mktemp("training_faults")
    tiny_prepared_ptb(root / "data")
    steps = [run_stage(root, "measure_profile", "ptb", "--out", "profile", "--metrics", "metrics/profile.json",
                       extra=EXTRA),
             _step(root, "baseline"), _step(root, "grow", "--log", "metrics/grow_log.csv"),
             _prune_rows(root),
             _step(root, "grow_lhp", "--input", "models/prune_rows.pt", "--fallback", "models/grow.pt",
                   "--profile", "profile")]
    steps.append(_step(root, "prune_weights", "--input", "models/grow_lhp.pt", "--baseline",
                       "metrics/baseline.json", "--profile", "profile", "--export", "models/final_export.pt",
                       "--log", "metrics/prune_weights_log.csv"))
    for proc in steps:
        assert proc.returncode == 0, proc.stderr
    shutil.copy(root / "models/prune_weights.pt", root / "models/final.pt")
    return root


@pytest.fixture
def flow(built, tmp_path):
    """A private copy of the built flow, with its outputs fingerprinted."""
    shutil.copytree(built, tmp_path / "flow")
    return tmp_path / "flow"


def _corrupt_checkpoint(path, change):
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


# ---- checkpoints ------------------------------------------------------------------------------
def _nan_weights(ckpt):
    key = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.dim() == 2)
    ckpt["state_dict"][key][0, 0] = float("nan")


def _drop_config_field(ckpt):
    del ckpt["config"]["vocab"]


def _unknown_config_field(ckpt):
    ckpt["config"]["colour"] = "blue"


def _wrong_shape(ckpt):
    key = next(k for k, v in ckpt["state_dict"].items() if v.dim() == 2)
    ckpt["state_dict"][key] = torch.zeros(3, 3)


def _not_a_tensor(ckpt):
    key = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][key] = [1, 2, 3]


def _other_task(ckpt):
    ckpt["kind"] = "ds2_hlstm"


@pytest.mark.parametrize("change, fragments", [
    (_nan_weights, ("NaN or infinite",)),
    (_drop_config_field, ("lacks config field 'vocab'",)),
    (_unknown_config_field, ("unknown config field 'colour'",)),
    (_wrong_shape, ("has shape (3, 3)",)),
    (_not_a_tensor, ("not a tensor",)),
    (_other_task, ("'ds2_hlstm' model, not a language model",)),
], ids=["nan-weights", "config-missing-field", "config-unknown-field", "wrong-shape", "not-a-tensor",
        "another-task"])
def test_a_damaged_input_checkpoint_is_refused_before_work(flow, change, fragments):
    _corrupt_checkpoint(flow / "models/grow.pt", change)
    before = fingerprint(flow)
    assert_refused(_prune_rows(flow), "models/grow.pt", *fragments)
    assert_unchanged(before, flow)


@pytest.mark.parametrize("content, fragment", [
    (b"not a checkpoint at all", "is unreadable"),
    (None, "not found"),
], ids=["garbage-bytes", "missing"])
def test_an_unreadable_or_missing_checkpoint_is_named(flow, content, fragment):
    path = flow / "models/grow.pt"
    path.unlink()
    if content is not None:
        path.write_bytes(content)
    before = fingerprint(flow)
    assert_refused(_prune_rows(flow), "checkpoint models/grow.pt", fragment)
    assert_unchanged(before, flow)


def test_a_checkpoint_that_is_no_mapping_is_refused(flow):
    torch.save(torch.zeros(3), flow / "models/grow.pt")
    before = fingerprint(flow)
    assert_refused(_prune_rows(flow), "not a symbiotic checkpoint")
    assert_unchanged(before, flow)


class Payload:  # a pickled object: weights_only loading refuses to run its code
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_checkpoint_hiding_code_is_refused_and_the_code_never_runs(flow):
    torch.save({"kind": "hlstm_lm", "config": {}, "state_dict": {}, "meta": Payload()}, flow / "models/grow.pt")
    before = fingerprint(flow)
    proc = _prune_rows(flow)
    assert_refused(proc, "is unreadable")
    assert "code ran" not in proc.stdout
    assert_unchanged(before, flow)


def test_the_stock_lstm_where_an_hlstm_step_is_expected_is_refused(flow):
    before = fingerprint(flow)
    assert_refused(_prune_rows(flow, source="models/baseline.pt"),
             "holds the stock-LSTM baseline ('stacked_lm')", "needs an H-LSTM step")
    assert_unchanged(before, flow)


def test_an_hlstm_step_where_the_baseline_is_expected_is_refused(flow):
    shutil.copy(flow / "models/grow.pt", flow / "models/baseline.pt")
    before = fingerprint(flow)
    assert_refused(_evaluate(flow), "models/baseline.pt holds an H-LSTM step", "needs the stock-LSTM baseline")
    assert_unchanged(before, flow)


# ---- exported models --------------------------------------------------------------------------
def _nan_export(state):
    layer = state["layers"][0]
    tensor = next(v for v in layer.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
    tensor.view(-1)[0] = float("nan")


@pytest.mark.parametrize("write, fragments", [
    (lambda p: p.unlink(), ("inference export models/final_export.pt not found",)),
    (lambda p: p.write_bytes(b"\x00" * 64), ("inference export models/final_export.pt is unreadable",)),
    (lambda p: shutil.copy(p.parent / "final.pt", p), ("inference state kind",)),
    (lambda p: _edit_export(p, _nan_export), ("NaN or infinite",)),
    (lambda p: _edit_export(p, lambda s: s.update(version=99)), ("version is 99",)),
], ids=["missing", "garbage", "a-checkpoint-not-an-export", "nan-values", "other-version"])
def test_a_bad_export_is_refused_by_evaluate_before_timing(flow, write, fragments):
    write(flow / "models/final_export.pt")
    before = fingerprint(flow)
    assert_refused(_evaluate(flow), *fragments)
    assert_unchanged(before, flow)


def _edit_export(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


# ---- numerical faults and empty work ----------------------------------------------------------
def test_a_batch_wider_than_the_training_text_trains_nothing_and_is_refused(flow):
    before = fingerprint(flow)
    assert_refused(_step(flow, "baseline", extra={"train": {"ptb": {"batch": 100000}}}),
             "no batch", "train.ptb.batch")
    assert_unchanged(before, flow)


def test_a_diverging_loss_stops_with_the_epoch_and_batch_and_writes_nothing(flow):
    before = fingerprint(flow)
    proc = _step(flow, "baseline", extra={"train": {"ptb": {"lr": 10000.0, "clip": 0.0}}})
    line = assert_refused(proc, "ptb training diverged in epoch 0, batch", "lower train.ptb.lr")
    assert "of " in line
    assert_unchanged(before, flow)


def test_a_diverging_retraining_is_a_rolled_back_iteration_then_an_unreachable_threshold(flow):
    before = fingerprint(flow)
    # The retraining continues at step (a)'s final rate, so the rule is made strict instead of the rate
    # high: every retraining "diverges" (a window mean above 0.01x the first batch's loss).
    proc = _prune_rows(flow, extra={"train": {"ptb": {"diverge_factor": 0.01}}})
    assert_refused(proc, "all 2 iterations missed the threshold", "diverged", "if_none_accepted")
    assert_unchanged(before, flow)


# ---- unreachable thresholds -------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["prune_rows", "prune_weights"])
def test_an_unreachable_threshold_fails_loudly_instead_of_writing_the_input(flow, stage):
    run = _prune_rows if stage == "prune_rows" else _prune_weights
    before = fingerprint(flow)
    assert_refused(run(flow, extra=UNREACHABLE), f"{stage} ptb: all", "iterations missed the threshold valid 1 (",
             "unpruned input", f"{stage}.ptb.if_none_accepted: pass_through")
    assert_unchanged(before, flow)


def test_pass_through_resumes_the_refused_iterations_and_says_so(flow):
    assert_refused(_prune_rows(flow, extra=UNREACHABLE), "missed the threshold")
    allowed = {**UNREACHABLE, "prune_rows": {"ptb": {"if_none_accepted": "pass_through"}}}
    proc = _prune_rows(flow, extra=allowed)
    assert proc.returncode == 0, proc.stderr
    assert "NO iteration was accepted: the input is passed through" in proc.stdout
    metrics = json.loads((flow / "metrics/prune_rows.json").read_text())
    assert metrics["passed_through"] is True and metrics["accepted"] == 0
    assert "epoch" not in proc.stderr  # resumed: the two rejected iterations were not retrained


def test_ctrl_c_is_one_line_and_status_130(flow):
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT, tiny_params_file

    params = tiny_params_file(flow, {**EXTRA, "baseline": {"ptb": {"epochs": 50}}})
    cmd = [sys.executable, str(ROOT / "stages/baseline.py"), *training_args("ptb", "interrupted"),
           "--params", str(params)]
    # A shell without job control starts background jobs with SIGINT ignored, and Python then
    # never raises KeyboardInterrupt: give the stage the default disposition a terminal gives it.
    proc = subprocess.Popen(cmd, cwd=flow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (flow / ".resume/ptb_baseline.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the stage ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    assert_refused(done, "interrupted", "run the same command again to resume", status=130)
    assert not (flow / "models/interrupted.pt").exists()
