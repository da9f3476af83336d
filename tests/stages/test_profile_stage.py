"""The profile stage on a tiny grid: every output, and a clear error for an absent GPU."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from helpers import ROOT, tiny_params_file


def run_profile(tmp_path, extra=None):
    params = tiny_params_file(tmp_path, extra)
    out, metrics = tmp_path / "profiles", tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "stages/measure_profile.py"), "ptb", "--params", str(params),
           "--out", str(out), "--metrics", str(metrics)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path), out, metrics


def test_profile_outputs(tmp_path):
    proc, out, metrics = run_profile(tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "latency.csv")
    # hidden/gate_hidden grids: 8, 10, 12, 16; input: 4, 6, 8
    assert sorted(table[table.dimension == "hidden"]["size"]) == [8, 10, 12, 16]
    assert sorted(table[table.dimension == "input"]["size"]) == [4, 6, 8]
    assert (table["passes"] == 2).all() and (table["median_s"] > 0).all()
    lhp = json.loads((out / "lhp.json").read_text())
    for name in ("hidden", "gate_hidden", "input"):
        assert lhp["dimensions"][name]["lhps"][-1] == max(table[table.dimension == name]["size"])
    sparse = pd.read_csv(out / "sparse.csv")
    assert set(sparse["product"]) == {"u_x", "u_h", "w", "decoder"} and set(sparse["sparsity"]) == {0.0, 0.9}
    device = json.loads((out / "device.json").read_text())
    assert device["threads"] >= 1 and device["torch_version"] == torch.__version__
    assert (out / "lhe.png").stat().st_size > 1000
    summary = json.loads(metrics.read_text())
    assert summary["points"] == 11 and "hidden_redundancy" in summary


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_fails_clearly_before_measuring(tmp_path):
    proc, out, metrics = run_profile(tmp_path, {"device": "cuda"})
    assert proc.returncode == 2
    assert "torch finds no CUDA GPU" in proc.stderr and "device=cpu" in proc.stderr
    assert not out.exists() and not metrics.exists()


def test_unknown_device(tmp_path):
    proc, _, _ = run_profile(tmp_path, {"device": "tpu"})
    assert proc.returncode == 2 and "cpu, cuda" in proc.stderr


def test_missing_grid_is_named(tmp_path):
    proc, out, _ = run_profile(tmp_path, {"profile": {"ptb": {"grids": {"input": None}}}})
    assert proc.returncode == 2 and "grids.input" in proc.stderr
    assert not out.exists()
