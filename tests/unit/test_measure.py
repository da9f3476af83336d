"""Tests for the one latency-measurement module.

No absolute times are asserted: the machine is shared, so only orderings and
ratios with generous margins are stable.
"""

import json

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.hardware.measure import (
    Timing,
    default_threads,
    fingerprint,
    fingerprint_key,
    measure,
    resolve_device,
)

CPU = torch.device("cpu")


def test_resolve_cpu():
    assert resolve_device("cpu") == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_resolve_cuda_without_gpu_is_user_error():
    with pytest.raises(UserError, match="device=cpu"):
        resolve_device("cuda")


def test_resolve_unknown_is_user_error():
    with pytest.raises(UserError, match="cpu, cuda"):
        resolve_device("tpu")


def test_default_threads_is_positive():
    assert default_threads() >= 1


def _matmul_fn(rows: int):
    # (rows x 64) @ (64 x 64): work scales linearly with rows.
    a, b = torch.randn(rows, 64), torch.randn(64, 64)
    return lambda: a @ b


def test_measure_returns_consistent_timing():
    t = measure(_matmul_fn(32), device=CPU, threads=1, warmup=1, min_run_time=0.01, min_runs=5)
    assert isinstance(t, Timing)
    assert t.n >= 5
    assert t.threads == 1
    assert 0 < t.p10_s <= t.median_s <= t.p90_s
    assert t.iqr_s >= 0 and t.spread >= 0
    assert set(t.to_dict()) == {"median_s", "iqr_s", "p10_s", "p90_s", "n", "threads"}


def test_measure_restores_thread_count():
    before = torch.get_num_threads()
    measure(_matmul_fn(8), device=CPU, threads=1, warmup=1, min_run_time=0.005, min_runs=3)
    assert torch.get_num_threads() == before


def test_more_work_measures_slower():
    # 4x the rows is ~4x the FLOPs; require only 1.5x so noise cannot flip it.
    kw = dict(device=CPU, threads=1, warmup=2, min_run_time=0.02, min_runs=5)
    small = measure(_matmul_fn(128), **kw)
    large = measure(_matmul_fn(512), **kw)
    assert large.median_s / small.median_s > 1.5


def test_fingerprint_fields_and_json():
    fp = fingerprint(CPU, threads=1)
    required = {
        "device", "cpu_model", "logical_cores", "threads", "torch_version",
        "cuda_version", "mkl_available", "mkl_version", "mkldnn_available",
        "mkldnn_version", "cudnn_version", "gpu_name", "platform",
        "python_version", "hostname",
    }
    assert required <= set(fp)
    assert fp["threads"] == 1
    json.dumps(fp)


def test_fingerprint_key_ignores_hostname_but_not_threads():
    fp = fingerprint(CPU, threads=1)
    key = fingerprint_key(fp)
    assert key == fingerprint_key({**fp, "hostname": "elsewhere"})
    assert key != fingerprint_key({**fp, "threads": 2})
    assert fp["cpu_model"] in key
