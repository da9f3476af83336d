"""Timing whole models with the one measuring module, side by side and interleaved."""

from __future__ import annotations

import random
import statistics

from symbiotic.hardware.measure import measure
from symbiotic.training import distributed


def side_by_side(calls: dict[str, callable], device, threads: int, rounds: int, min_run_time: float,
                 seed: int = 0) -> dict[str, dict]:
    """Median and spread of each call over ``rounds`` interleaved rounds in random order.

    Interleaving makes slow drifts of a shared machine hit every model alike, so
    the ratios between models are trustworthy even when absolute times wander. Of several
    training processes, rank 0 measures alone and every rank gets its numbers.
    """
    return distributed.current().first(lambda: _interleaved(calls, device, threads, rounds, min_run_time, seed))


def _interleaved(calls: dict[str, callable], device, threads: int, rounds: int, min_run_time: float,
                 seed: int) -> dict[str, dict]:
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            samples[name].append(measure(calls[name], device=device, threads=threads,
                                         min_run_time=min_run_time).median_s)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "rounds": len(v)}
            for name, v in samples.items()}
