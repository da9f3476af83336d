"""Latency hysteresis points (LHPs) from a measured latency profile.

Latency grows with matrix size overall but is locally non-monotonic (the
latency hysteresis effect): a slightly smaller dimension can be slower than a
larger one. A dimension is an LHP when no larger dimension is as fast; every
other dimension is a wasted design point, since a larger (more accurate) model
costs no more time.

Input is latency over several passes, ``lat_passes[p][i]`` for pass ``p`` and
the ascending grid ``dims[i]``; each pass measures every point once, in a
randomized interleaved order chosen by the caller, so drift and noise hit the
passes independently. Everything here is pure arithmetic on those numbers.
"""

from __future__ import annotations

import math
import statistics
from itertools import combinations
from typing import Sequence

from symbiotic.errors import UserError


def _check(dims: Sequence[int], lat_passes) -> tuple[list[int], list[list[float]]]:
    """Plain lists of ints/floats, or ValueError for a malformed profile."""
    ds = [int(d) for d in dims]
    if not ds:
        raise ValueError("dims is empty")
    if any(b <= a for a, b in zip(ds, ds[1:])):
        raise ValueError(f"dims must be strictly ascending, got {ds}")
    passes = []
    for row in lat_passes:
        if not hasattr(row, "__len__"):
            raise ValueError("lat_passes must be 2-D: one row of latencies per pass")
        passes.append([float(x) for x in row])
    if not passes:
        raise ValueError("lat_passes has no passes")
    for row in passes:
        if len(row) != len(ds):
            raise ValueError(f"a pass has {len(row)} latencies for {len(ds)} dims")
        if not all(math.isfinite(x) and x > 0 for x in row):
            raise ValueError("latencies must be finite and positive")
    return ds, passes


def _check_tol(tol: float) -> float:
    if not 0.0 <= tol < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tol}")
    return float(tol)


def _dominates(passes: list[list[float]], j: int, i: int, tol: float) -> bool:
    # "<=" makes tol=0 the paper's rule (a larger dim *as fast or faster*
    # dominates, so a flat plateau keeps only its right end), while for tol>0
    # equal latencies never dominate: measurement noise cannot remove a point.
    return all(row[j] <= row[i] * (1.0 - tol) for row in passes)


def _mann_whitney_p(faster: list[float], slower: list[float]) -> float:
    """One-sided p-value that ``faster`` is stochastically smaller than ``slower``.

    Mann-Whitney U with the normal approximation (ties count one half); pure
    Python so that the package needs no SciPy for one test.
    """
    n1, n2 = len(faster), len(slower)
    u = sum((a < b) + 0.5 * (a == b) for a in faster for b in slower)
    sigma = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    if sigma == 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / sigma  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _dominates_test(passes: list[list[float]], j: int, i: int, tol: float, alpha: float) -> bool:
    faster = [row[j] for row in passes]
    slower = [row[i] * (1.0 - tol) for row in passes]
    if statistics.median(faster) > statistics.median(slower):
        return False
    return _mann_whitney_p(faster, slower) < alpha


def lhp_mask(dims: Sequence[int], lat_passes, tol: float, method: str = "all_passes",
             alpha: float = 0.01) -> list[bool]:
    """True where dims[i] is an LHP.

    ``all_passes``: point i is dominated iff one larger dimension is faster by
    the relative tolerance in EVERY pass, so a single noisy pass (a hiccup on a
    shared machine) cannot make a real design point vanish.
    ``mann_whitney``: i is dominated iff a larger dimension's latencies, over the
    passes, are smaller than i's scaled by (1 - tol) by a one-sided Mann-Whitney
    test at level ``alpha`` divided by the number of larger candidates
    (Bonferroni: many candidates are tried for each point). It pools all passes
    and so detects a real but small effect that some pass happens to hide.
    The largest dimension has nothing larger, so it is always an LHP.
    """
    ds, passes = _check(dims, lat_passes)
    tol = _check_tol(tol)
    n = len(ds)
    if method == "all_passes":
        return [not any(_dominates(passes, j, i, tol) for j in range(i + 1, n)) for i in range(n)]
    if method == "mann_whitney":
        return [not any(_dominates_test(passes, j, i, tol, alpha / (n - 1 - i)) for j in range(i + 1, n))
                for i in range(n)]
    raise ValueError(f"unknown LHP method {method!r}: use all_passes or mann_whitney")


def _jaccard(a: set, b: set) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def pass_agreement(dims: Sequence[int], lat_passes, tol: float) -> float:
    """Mean pairwise Jaccard similarity of the LHP sets found by each pass alone.

    1.0 means every pass would have picked the same LHPs, i.e. the profile is
    reproducible; low values say the LHPs are mostly noise.
    """
    ds, passes = _check(dims, lat_passes)
    sets = []
    for row in passes:
        mask = lhp_mask(ds, [row], tol)
        sets.append({d for d, keep in zip(ds, mask) if keep})
    pairs = list(combinations(sets, 2))
    if not pairs:
        return 1.0
    return sum(_jaccard(a, b) for a, b in pairs) / len(pairs)


def split_half_agreement(dims: Sequence[int], lat_passes, tol: float, method: str = "all_passes",
                         alpha: float = 0.01) -> float:
    """Jaccard similarity of the LHP sets found by the even and by the odd passes.

    Each half applies the all-passes rule on its own, so this asks the question
    that matters downstream: would an independent profile pick the same LHPs?
    (1.0 with fewer than two passes.)
    """
    ds, passes = _check(dims, lat_passes)
    if len(passes) < 2:
        return 1.0
    halves = [lhp_mask(ds, passes[k::2], tol, method, alpha) for k in (0, 1)]
    sets = [{d for d, keep in zip(ds, mask) if keep} for mask in halves]
    return _jaccard(*sets)


def redundancy(mask: Sequence[bool]) -> float:
    """Architecture space redundancy: the fraction of grid points that are not LHPs."""
    if not len(mask):
        raise ValueError("mask is empty")
    return 1.0 - sum(bool(m) for m in mask) / len(mask)


def median_latency(lat_passes) -> list[float]:
    """Per-point median over passes, the robust single latency per dimension."""
    passes = [[float(x) for x in row] for row in lat_passes]
    return [statistics.median(col) for col in zip(*passes)]


def hysteresis_bins(
    dims: Sequence[int], median_lat: Sequence[float], mask: Sequence[bool], top: int = 5
) -> list[dict]:
    """The ``top`` worst dominated points, each with the LHP that beats it.

    For each dominated dim, its bin ends at the smallest larger LHP that is at
    least as fast; ``ratio`` = slower/faster - 1 says how much latency the
    dominated dim wastes. These illustrate the hysteresis effect in reports.
    """
    ds, (lat,) = _check(dims, [median_lat])
    mask = _check_mask(ds, mask)
    bins = []
    for i, keep in enumerate(mask):
        if keep:
            continue
        j = next((j for j in range(i + 1, len(ds)) if mask[j] and lat[j] <= lat[i]), None)
        if j is None:  # only possible for a mask not derived from these medians
            continue
        bins.append({
            "dim": ds[i],
            "faster_dim": ds[j],
            "latency_s": lat[i],
            "faster_latency_s": lat[j],
            "ratio": lat[i] / lat[j] - 1.0,
        })
    bins.sort(key=lambda b: (-b["ratio"], b["dim"]))
    return bins[:top]


def _check_mask(ds: list[int], mask: Sequence[bool]) -> list[bool]:
    if len(mask) != len(ds):
        raise ValueError(f"mask has {len(mask)} entries for {len(ds)} dims")
    return [bool(m) for m in mask]


def _candidates(ds: list[int], mask: Sequence[bool], at_least: int) -> list[int]:
    if at_least > ds[-1]:
        raise UserError(
            f"the latency profile grid stops at dimension {ds[-1]}, "
            f"below the requested dimension {at_least}",
            f"extend the profile grid param to reach at least {at_least} and re-run the profile stage",
        )
    idx = [i for i, d in enumerate(ds) if d >= at_least and mask[i]]
    if not idx:
        raise ValueError("mask has no LHP at or above the request; the largest dim must be an LHP")
    return idx


def choose_lhp(
    dims: Sequence[int], median_lat: Sequence[float], mask: Sequence[bool], at_least: int,
    at_most: int | None = None, rule: str = "nearest",
) -> int | None:
    """The LHP a pruned width ``at_least`` grows to, never above ``at_most``; None if no LHP
    lies in [at_least, at_most].

    ``rule`` "nearest": the paper's corresponding LHP, the smallest one at or above the
    width. "fastest": the fastest in the range (ties: smaller dim), which matters when
    tolerance or several passes leave LHPs whose latencies are not increasing.
    """
    if rule not in ("nearest", "fastest"):
        raise ValueError(f"rule must be 'nearest' or 'fastest', got {rule!r}")
    ds, (lat,) = _check(dims, [median_lat])
    idx = _candidates(ds, _check_mask(ds, mask), at_least)
    idx = [i for i in idx if at_most is None or ds[i] <= at_most]
    if not idx:
        return None
    best = idx[0] if rule == "nearest" else min(idx, key=lambda i: (lat[i], ds[i]))
    return ds[best]


def snap_up(dims: Sequence[int], mask: Sequence[bool], at_least: int) -> int:
    """The smallest LHP with dimension >= ``at_least``."""
    ds = [int(d) for d in dims]
    return ds[_candidates(ds, _check_mask(ds, mask), at_least)[0]]


def summarize(dims: Sequence[int], lat_passes, tol: float, method: str = "all_passes",
              alpha: float = 0.01) -> dict:
    """JSON-ready record of a profile's LHP analysis (plain ints, floats, lists)."""
    ds, passes = _check(dims, lat_passes)
    mask = lhp_mask(ds, passes, tol, method, alpha)
    med = median_latency(passes)
    return {
        "dims": ds,
        "lhps": [d for d, keep in zip(ds, mask) if keep],
        "n_points": len(ds),
        "n_passes": len(passes),
        "redundancy": redundancy(mask),
        "agreement": pass_agreement(ds, passes, tol),
        "split_half_agreement": split_half_agreement(ds, passes, tol, method, alpha),
        "method": method,
        "alpha": alpha,
        "tolerance": float(tol),
        "bins": hysteresis_bins(ds, med, mask),
        "median_latency_s": med,
    }
