"""Device resolution, latency measurement and machine fingerprints.

Every latency number in the project comes from ``measure`` so that all of them
share one protocol (warm-up, fixed thread count, medians over many runs) and can
be compared with each other. Modules never pick a device themselves: they call
``resolve_device`` with the user's ``device`` param.
"""

from __future__ import annotations

import contextlib
import math
import time
import os
import platform
import re
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch.utils.benchmark import Timer

from symbiotic.errors import UserError

DEVICES = ("cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The torch device for a user's ``device`` param, or a UserError.

    Failing here (rather than letting torch fail later mid-run) turns a missing
    GPU into a one-line message that says how to proceed.
    """
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "device 'cuda' was requested but torch finds no CUDA GPU on this machine",
                "run with device=cpu (e.g. dvc exp run -S device=cpu) or on a machine with a GPU",
            )
        return torch.device("cuda")
    raise UserError(
        f"unknown device {name!r}",
        f"set device to one of: {', '.join(DEVICES)}",
    )


def default_threads() -> int:
    """Threads to measure with when the user does not say.

    torch.get_num_threads() follows OMP_NUM_THREADS and friends, but may exceed
    the cores this process may actually use (containers, CPU affinity);
    oversubscribed threads make latency erratic, so take the smaller.
    """
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    return max(1, min(cores, torch.get_num_threads()))


@dataclass(frozen=True)
class Timing:
    """Summary of one measured callable, in seconds per call."""

    median_s: float
    iqr_s: float  # p75 - p25: a noise measure that ignores outliers
    p10_s: float
    p90_s: float
    n: int  # number of timed runs (blocks) the statistics come from
    threads: int

    @property
    def spread(self) -> float:
        """Relative noise (IQR / median); large values mean an unreliable number."""
        return self.iqr_s / self.median_s if self.median_s > 0 else float("inf")

    def to_dict(self) -> dict:
        return asdict(self)


def _percentile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _timing(times: list[float], threads: int) -> Timing:
    xs = sorted(float(t) for t in times)
    return Timing(
        median_s=_percentile(xs, 50),
        iqr_s=_percentile(xs, 75) - _percentile(xs, 25),
        p10_s=_percentile(xs, 10),
        p90_s=_percentile(xs, 90),
        n=len(xs),
        threads=threads,
    )


@contextlib.contextmanager
def _num_threads(threads: int):
    """Temporarily fix torch's intra-op thread count, restoring it afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously; without a sync the warm-up work would
    # spill into (and inflate) the first timed block.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fn: Callable[[], object],
    *,
    device: torch.device,
    threads: int,
    warmup: int = 3,
    min_run_time: float = 0.2,
    min_runs: int = 5,
) -> Timing:
    """Latency of one call of ``fn`` on ``device`` with ``threads`` CPU threads.

    Why each choice:
    - warm-up calls first: the first calls pay for the caching allocator, cold
      caches, lazy CUDA/cuBLAS init and oneDNN primitive creation, none of which
      recur in steady-state inference;
    - a fixed thread count (also during warm-up): CPU latency depends strongly
      on it, so a number is only meaningful together with its thread count;
    - torch.utils.benchmark.Timer: it batches fast calls into blocks so timer
      overhead is negligible, and synchronizes CUDA around each block;
    - medians/percentiles over at least ``min_runs`` blocks: the machine is
      shared, and noise from other processes only ever adds time, so means
      would be biased by outliers;
    - inference_mode: we time deployment (forward only), and autograd
      bookkeeping would add latency that inference never pays.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs}")
    times: list[float] = []
    with torch.inference_mode(), _num_threads(threads):
        start = time.perf_counter()
        for _ in range(max(warmup, 1)):
            fn()
        _sync(device)
        per_call = (time.perf_counter() - start) / max(warmup, 1)
        # Block size and count come from the warm-up's own timing rather than
        # Timer.blocked_autorange, whose calibration costs about a second per
        # call: too much for a profile of hundreds of points. Blocks of at least
        # ~1 ms keep timer overhead negligible for fast calls.
        number = max(1, math.ceil(1e-3 / max(per_call, 1e-9)))
        blocks = max(min_runs, math.ceil(min_run_time / max(per_call * number, 1e-9)))
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        for _ in range(blocks):
            times.extend(timer.timeit(number).times)
    return _timing(times, threads)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _optional(getter: Callable[[], object]) -> object:
    """A library version that may be missing from this torch build, or None."""
    try:
        value = getter()
    except Exception:  # absent attribute, library not loaded, no driver, ...
        return None
    return value if isinstance(value, (int, float, bool, type(None))) else str(value)


def _build_config_version(pattern: str) -> str | None:
    """A library version from torch's build summary, for builds whose Python
    API does not expose it (MKL and oneDNN usually do not)."""
    try:
        match = re.search(pattern, torch.__config__.show())
    except Exception:
        return None
    return match.group(1) if match else None


def fingerprint(device: torch.device, threads: int) -> dict:
    """What produced a latency number: the hardware and software it ran on.

    Latency profiles are only valid on the machine they were measured on; this
    record lets later stages (and readers) check that. All values are
    JSON-serialisable; ``hostname`` is informational only and is deliberately
    left out of ``fingerprint_key``.
    """
    mkl = torch.backends.mkl
    mkldnn = torch.backends.mkldnn
    is_cuda = device.type == "cuda"
    return {
        "device": device.type,
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": int(threads),
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "mkl_available": bool(mkl.is_available()),
        "mkl_version": _optional(lambda: mkl.get_version_string())
        or _build_config_version(r"Math Kernel Library Version ([\d.]+)"),
        "mkldnn_available": bool(mkldnn.is_available()),
        "mkldnn_version": _optional(lambda: mkldnn.version())
        or _build_config_version(r"MKL-DNN v([\d.]+)"),
        "cudnn_version": _optional(torch.backends.cudnn.version) if is_cuda else None,
        "gpu_name": _optional(lambda: torch.cuda.get_device_name(device)) if is_cuda else None,
        "platform": platform.platform(),
        "python_version": sys.version.split()[0],
        "hostname": socket.gethostname(),
    }


def fingerprint_key(fp: dict) -> str:
    """Short stable string of the fields that change latency.

    Two profiles with equal keys were measured on the same kind of hardware
    with the same threads and torch, so they are comparable; the hostname is
    excluded so identical machines match.
    """
    hw = fp.get("gpu_name") if fp.get("device") == "cuda" else fp.get("cpu_model")
    return (
        f"{fp.get('device')}:{hw}|{fp.get('logical_cores')} cores"
        f"|{fp.get('threads')} threads|torch {fp.get('torch_version')}"
    )
