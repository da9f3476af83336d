"""The AN4 flow's stages one after another on random utterances and tiny params: every output,
the WER threshold, the export, and one-line errors for AN4-specific mistakes."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from helpers import ROOT, tiny_params_file, tiny_prepared_an4

TINY = {"prepare": {"an4": {"features": {"n_mfcc": 13}}},
        "train": {"an4": {"train_utterances": None, "batch": 4, "eval_batch": 4}},
        "model": {"an4": {"hidden": 8, "gate_hidden": 6}},
        "baseline": {"an4": {"hidden": 8}},
        "profile": {"an4": {"grids": {
            "hidden": {"stop": 16, "coarse": 8, "fine_from": 6, "fine_to": 10, "fine": 2},
            "gate_hidden": {"stop": 16, "coarse": 8, "fine_from": 4, "fine_to": 8, "fine": 2}}}}}


def stage(tmp_path, name: str, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    params = tiny_params_file(tmp_path, {**TINY, **(extra or {})})
    cmd = [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args, "--params", str(params)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)


def training(tmp_path, name: str, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    return stage(tmp_path, name, "an4", "--data", "data", "--model", f"models/{name}.pt",
                 "--metrics", f"metrics/{name}.json", "--history", f"plots/{name}.csv", *args, extra=extra)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Random prepared data, the profile and the baseline: what every later stage reads
    (once for the module: the tests below only add files, or fail without writing)."""
    tmp_path = tmp_path_factory.mktemp("an4_flow")
    tiny_prepared_an4(tmp_path / "data")
    proc = stage(tmp_path, "measure_profile", "an4", "--out", "profile", "--metrics", "metrics/profile.json")
    assert proc.returncode == 0, proc.stderr
    proc = training(tmp_path, "baseline")
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def test_the_whole_flow_on_tiny_data(flow):
    steps = [("grow", ["--log", "metrics/grow_log.csv"]),
             ("prune_rows", ["--input", "models/grow.pt", "--baseline", "metrics/baseline.json",
                             "--log", "metrics/prune_rows_log.csv"]),
             ("grow_lhp", ["--input", "models/prune_rows.pt", "--fallback", "models/grow.pt",
                           "--profile", "profile"]),
             ("prune_weights", ["--input", "models/grow_lhp.pt", "--baseline", "metrics/baseline.json",
                                "--profile", "profile", "--export", "models/final_export.pt",
                                "--log", "metrics/prune_weights_log.csv"])]
    for name, args in steps:
        out = "final" if name == "prune_weights" else name
        proc = stage(flow, name, "an4", "--data", "data", "--model", f"models/{out}.pt",
                     "--metrics", f"metrics/{name}.json", "--history", f"plots/{name}.csv", *args)
        assert proc.returncode == 0, proc.stderr
        assert "test wer" in proc.stdout
    # The sparse path times step (a)'s widths against step (b)'s; it hands on step (a)'s (the paper's
    # CPU rule) or, with sparse_widths=faster, the faster.
    for rule in ("step_a", "faster"):
        sparse = stage(flow, "grow_lhp", "an4", "--data", "data", "--model", f"models/{rule}.pt",
                       "--metrics", f"metrics/{rule}.json", "--history", f"plots/{rule}.csv", *steps[2][1],
                       extra={"grow_lhp": {"an4": {"mode": "sparse", "sparse_widths": rule}}})
        assert sparse.returncode == 0, sparse.stderr
        chosen = json.loads((flow / f"metrics/{rule}.json").read_text())
        faster = "thinned" if chosen["compare.thinned_ms"] < chosen["compare.full_ms"] else "full"
        assert chosen["compare.faster"] == faster
        kept = faster if rule == "faster" else "full"
        assert chosen["source"] == {"thinned": "models/prune_rows.pt", "full": "models/grow.pt"}[kept]
    base = json.loads((flow / "metrics/baseline.json").read_text())
    assert {"test_wer", "test_cer", "params_frontend_dense", "params_recurrent_nonzero"} <= set(base)
    pruned = json.loads((flow / "metrics/prune_weights.json").read_text())
    assert pruned["threshold"] == 1.0e9 and pruned["recurrent_density"] < 1.0
    proc = stage(flow, "evaluate", "an4", "--data", "data", "--models", "models",
                 "--export", "models/final_export.pt", "--table", "steps.csv", "--summary", "summary.json",
                 "--plot", "tradeoff.png", "--profile", "profile")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(flow / "steps.csv")
    assert list(table["model"]) == ["baseline", "grow", "prune_rows", "grow_lhp", "final"]
    assert {"wer", "cer", "latency_full_per_sequence_ms"} <= set(table.columns)
    summary = json.loads((flow / "summary.json").read_text())
    assert "wer_no_worse" in summary and summary["compression_recurrent_x"] > 1
    profile = json.loads((flow / "profile/lhp.json").read_text())
    assert set(profile["dimensions"]) == {"hidden", "gate_hidden"}  # conv features are not pruned
    assert profile["base"]["input"] == 2 * 4  # 2 conv channels x 4 frequency bins left of 13


def test_an_unknown_split_threshold_is_refused_before_work(flow):
    proc = stage(flow, "prune_rows", "an4", "--data", "data", "--model", "refused.pt", "--metrics", "refused.json",
                 "--history", "refused.csv", "--input", "models/baseline.pt", "--baseline", "metrics/baseline.json",
                 "--log", "log.csv", extra={"threshold": {"an4": {"split": "train"}}})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "'threshold.an4.split' is 'train'" in proc.stderr and not (flow / "refused.pt").exists()


def test_a_language_model_checkpoint_is_refused(flow):
    torch.save({"kind": "hlstm_lm", "config": {}, "state_dict": {}, "meta": {}}, flow / "lm.pt")
    proc = training(flow, "prune_rows", "--input", "lm.pt", "--baseline", "metrics/baseline.json",
                    "--log", "log.csv")
    assert proc.returncode == 2 and "not a DeepSpeech2 model" in proc.stderr


def test_unknown_task_is_named(tmp_path):
    proc = stage(tmp_path, "baseline", "timit", "--data", "d", "--model", "m.pt", "--metrics", "m.json",
                 "--history", "h.csv")
    assert proc.returncode == 2 and "unknown task 'timit'" in proc.stderr and "ptb, an4" in proc.stderr


def test_three_processes_train_an4_with_uneven_and_empty_shares(flow, tmp_path):
    """12 utterances in batches of 5 (5, 5, 2) over 3 processes: shares of 1 and 2 utterances,
    and one empty share in the last batch (it runs with weight 0); batch norm is normalised per
    share, so the ranks' statistics differ until each epoch's end hands them rank 0's. The stage
    checks after every epoch that the ranks' weights and masks are identical."""
    import shutil

    shutil.copytree(flow / "data", tmp_path / "data")
    extra = {"train": {"an4": {"train_utterances": None, "batch": 5, "eval_batch": 4, "processes": 3}}}
    proc = training(tmp_path, "grow", "--log", "metrics/grow_log.csv", extra=extra)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics" / "grow.json").read_text())
    assert metrics["processes"] == 3 and 0 <= metrics["test_wer"] and metrics["growth_points"] >= 1
    assert len(pd.read_csv(tmp_path / "plots" / "grow.csv")) == metrics["epochs"]  # one writer
