"""Step (c): row/column growth back up to a latency hysteresis point (Algorithm 2).

On devices where the profile says sparse kernels beat dense ones at the
sparsity weight pruning can reach (CPUs, per the paper), the paper keeps step
(a)'s dimensions and goes for sparsity. The step still measures whether that
is right: step (a)'s model and step (b)'s thinned one are timed side by side at
that sparsity, in the formats the profile picks, and the timings are recorded.
``sparse_widths`` says which is handed on: "step_a" (the paper's rule, the
default) or "faster" (on a 2-core CPU the thinned one won: fewer rows also mean
less element-wise work in every time step). Otherwise (dense path) each pruned width
is grown to its corresponding LHP (the nearest at or above it, never above step (a)'s
width; ``lhp_choice: fastest`` takes the fastest in that range), the choice is confirmed by timing
the thinned model at both widths, and the new rows/columns are woken with their
gradient x learning rate and retrained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch

from symbiotic.config import ranged
from symbiotic.flow.common import accumulated_gradients, seed_everything
from symbiotic.flow.latency import side_by_side
from symbiotic.flow.stage import Step
from symbiotic.hardware import lhp
from symbiotic.runtime.formats import every, formats_at
from symbiotic.sparsity.growth import strongest_candidates
from symbiotic.sparsity.masks import apply_masks, recurrent_masks
from symbiotic.sparsity.pruning import prune_mask
from symbiotic.sparsity.thinning import thin, widen
from symbiotic.sparsity.units import (appended_units, fill_units, remove_units, unit_key, unit_scores,
                                     wake_units)
from symbiotic.training.loop import Trainer

@dataclass(frozen=True)
class GrowLHPConfig:
    mode: str = ranged("auto", choices=("auto", "dense", "sparse"))  # auto: decided by the profile
    reachable_sparsity: float = ranged(0.9, lo=0.0, hi=0.999)  # what step (d) is expected to reach
    retrain_epochs: int = ranged(1, lo=0, hi=1000)
    confirm_rounds: int = ranged(5, lo=1, hi=100)  # interleaved timing rounds for the confirmation
    # Sparse path: hand on step (a)'s widths (the paper's CPU rule) or the faster of (a) and (b) as timed
    sparse_widths: str = ranged("step_a", choices=("step_a", "faster"))
    # Dense path: grow each pruned width to the nearest LHP at or above it (the paper's
    # "corresponding LHP") or to the fastest LHP up to step (a)'s width
    lhp_choice: str = ranged("nearest", choices=("nearest", "fastest"))
    # Dense path: wake the candidates with the largest gradient sums among step (a)'s removed
    # rows/columns (Algorithm 2) or append exactly the units each width needs ("fresh")
    candidates: str = ranged("dormant", choices=("dormant", "fresh"))


def decide(cfg: GrowLHPConfig, profile: dict) -> dict:
    """Dense (shrink to LHPs) or sparse (keep widths, go for sparsity), with the evidence."""
    crossover = profile.get("sparse_crossover", {})
    per_step = {k: crossover.get(k) for k in ("u_h", "w")}  # the products inside the time loop
    sparse_wins = all(c is not None and c <= cfg.reachable_sparsity for c in per_step.values())
    mode = cfg.mode if cfg.mode != "auto" else ("sparse" if sparse_wins else "dense")
    return {"mode": mode, "forced": cfg.mode != "auto", "reachable_sparsity": cfg.reachable_sparsity,
            "crossover_u_h": per_step["u_h"], "crossover_w": per_step["w"],
            "crossover_u_x": crossover.get("u_x"), "sparse_wins": sparse_wins,
            "reason": (f"CSR beats dense for the per-step products from sparsity "
                       f"{per_step['u_h']} (u_h) and {per_step['w']} (w), at or below the "
                       f"{cfg.reachable_sparsity} that weight pruning reaches"
                       if sparse_wins else
                       f"CSR does not beat dense for the per-step products at or below sparsity "
                       f"{cfg.reachable_sparsity} (crossovers u_h={per_step['u_h']}, w={per_step['w']})")}


def lhp_targets(latency: pd.DataFrame, widths: dict[str, int], profile_dims: dict[str, str],
                ceiling: dict[str, int], rule: str = "nearest") -> dict[str, dict]:
    """For each unit key a profiled dimension sizes (``profile_dims``: dimension -> key prefix,
    e.g. hidden -> hidden.0, hidden.1): the LHP its pruned width grows to by ``rule``
    (:func:`symbiotic.hardware.lhp.choose_lhp`), never above step (a)'s width (``ceiling``);
    with no LHP in between, the width stays. Layer 0's profile serves every layer."""
    out = {}
    for dim, prefix in profile_dims.items():
        part = latency[latency["dimension"] == dim].sort_values("size")
        sizes, medians = part["size"].tolist(), part["median_s"].tolist()
        mask = part["is_lhp"].astype(bool).tolist()
        for key, width in widths.items():
            if key.split(".")[0] == prefix:
                lhp_width = lhp.choose_lhp(sizes, medians, mask, width, at_most=ceiling[key], rule=rule)
                out[key] = {"dimension": dim, "pruned": width, "ceiling": ceiling[key], "rule": rule,
                            "lhp": lhp_width, "candidate": width if lhp_width is None else lhp_width}
    return out


def _widened(model, target: dict[str, int]):
    return widen(model, {**model.widths(), **target})


def _on(inputs: tuple, device) -> tuple:
    return tuple(t.to(device) for t in inputs)


def confirm(task, model, target: dict[str, int], device, threads: int, rounds: int, seq_len: int,
            batch: int) -> dict:
    """Time the thinned model at its pruned widths and at the candidate widths; keep the faster.

    ``seq_len`` counts recurrent steps, as the profile does (AN4's convolutions halve time).
    """
    inputs = _on(task.latency_inputs(batch, task.input_length(seq_len)), device)
    dense = every("dense")
    pruned = task.export(model, dense).to(device)
    candidate = task.export(_widened(model, target), dense).to(device)
    timing = side_by_side({"pruned": task.latency_call(pruned, inputs, "recurrent"),
                           "candidate": task.latency_call(candidate, inputs, "recurrent")},
                          device, threads, rounds, min_run_time=0.05)
    keep = "candidate" if timing["candidate"]["median_s"] <= timing["pruned"]["median_s"] else "pruned"
    return {"keep": keep, "pruned_ms": timing["pruned"]["median_s"] * 1e3,
            "candidate_ms": timing["candidate"]["median_s"] * 1e3}


@torch.no_grad()
def at_sparsity(model, sparsity: float):
    """A copy of ``model`` whose recurrent matrices are each magnitude-pruned to ``sparsity``
    (those already sparser are left alone): the shape step (d) is expected to leave, for timing."""
    model = copy.deepcopy(model)
    for weight, mask in recurrent_masks(model).values():
        density = float(mask.mean())
        if density > 1.0 - sparsity:
            mask.copy_(prune_mask(weight, mask, 1.0 - (1.0 - sparsity) / density))
    apply_masks(model)
    return model


def compare_sparse(task, full, thinned, crossover: dict, sparsity: float, device, threads: int,
                   rounds: int, seq_len: int, batch: int) -> dict:
    """Sparse path: step (a)'s widths ("full") against step (b)'s ("thinned"), both pruned to
    ``sparsity`` and exported in the formats the profile's crossovers pick there, timed side by
    side; returns the timings and which was faster (the stage decides what to hand on).

    ``seq_len`` counts recurrent steps, as the profile does.
    """
    inputs = _on(task.latency_inputs(batch, task.input_length(seq_len)), device)
    formats = formats_at(crossover, sparsity)
    calls = {name: task.latency_call(task.export(at_sparsity(model, sparsity), formats).to(device), inputs,
                                     "recurrent") for name, model in (("full", full), ("thinned", thinned))}
    timing = side_by_side(calls, device, threads, rounds, min_run_time=0.05)
    faster = "thinned" if timing["thinned"]["median_s"] < timing["full"]["median_s"] else "full"
    return {"faster": faster, "sparsity": sparsity, "full_ms": timing["full"]["median_s"] * 1e3,
            "thinned_ms": timing["thinned"]["median_s"] * 1e3, "formats": formats}


def signed_gradients(task, model, batches: int, seed: int) -> dict[str, torch.Tensor]:
    """Mean gradient of every parameter over ``batches`` training windows (zero where none)."""
    params = dict(model.named_parameters())
    means = accumulated_gradients(task, model, list(params), batches, seed).mean()
    return {n: means[n] if n in means else torch.zeros_like(p) for n, p in params.items()}


def grow_to(task, model, target: dict[str, int], lr: float, seed: int, pool: dict[str, int] | None = None):
    """Widen to ``target`` (unit key -> width) and wake the new rows/columns, initialised to
    -gradient x lr (one SGD step from zero): Algorithm 2.

    ``pool`` (unit key -> width, at least the target; step (a)'s widths) holds the dormant
    candidates: the rows/columns step (b) removed. Where a key has more candidates than its
    target needs, all of them get a live start, the gradient is taken over all, and the
    ``target - old`` with the largest gradient sums over the control-gate matrices (what
    Algorithm 1 scores) wake; the others are dropped. Without a pool every new unit wakes.

    A brand-new unit with all-zero weights and biases has zero activation and so
    zero gradient everywhere; the model therefore gives candidates a live start
    first (``init_new_units``: random biases, a random embedding column), which gives
    them an activation and their outgoing connections a gradient.
    """
    old = model.widths()
    pool = {key: max(width, (pool or {}).get(key, width)) for key, width in target.items()}
    big = _widened(model, pool)
    gen = seed_everything(seed)  # live starts here, dropout in the retraining that follows
    candidates = {key: appended_units(big, key, old[key], width) for key, width in pool.items() if width > old[key]}
    for key, index in candidates.items():
        wake_units(big, key, index)  # opens the masks (and zeroes biases of inactive units) ...
        big.init_new_units(key, index, gen)  # ... so the live start is set afterwards
    grads = signed_gradients(task, big, task.cfg.grad_batches, seed)
    chosen = {key: _strongest(big, key, grads, old[key], target[key]) for key in candidates}
    init = {n: -lr * g for n, g in grads.items()}
    for key, index in chosen.items():
        fill_units(big, key, index, init)  # masks were opened before the gradient existed
        dropped = sorted(set(candidates[key].tolist()) - set(index.tolist()))
        if dropped:
            remove_units(big, key, dropped)
    return thin(big) if pool != target else big


def _strongest(model, key: str, grads: dict[str, torch.Tensor], old: int, width: int) -> torch.Tensor:
    """The ``width - old`` candidates of ``key`` per block with the largest gradient sums."""
    scores = unit_scores(model, key, "control", values=grads)
    return strongest_candidates(scores, unit_key(model, key).blocks, old, width - old)


def grow_lhp(task, cfg: GrowLHPConfig, profile: dict, latency: pd.DataFrame, pruned: Step, full: Step,
             device, threads: int):
    """Step (c) as a whole: decide dense or sparse, then grow (dense) or pick the widths (sparse).

    Returns the model to hand on, its trainer (retrained where it grew) and the evidence for
    the metrics.
    """
    decision = decide(cfg, profile)
    timing = {"device": device, "threads": threads, "rounds": cfg.confirm_rounds,
              "seq_len": profile["seq_len"], "batch": profile["batch"]}
    extra = {"decision": decision}
    start = pruned
    if decision["mode"] == "sparse":
        start, compare = _sparse_start(task, cfg, profile, pruned, full, timing)
        extra.update({"compare": compare} if compare else {})
    extra["source"] = start.path
    trainer = Trainer(task, start.model, task.cfg, lr=start.lr)
    if decision["mode"] == "sparse":
        return start.model, trainer, extra
    model = start.model
    targets = lhp_targets(latency, model.widths(), task.profile_dims, full.model.widths(), cfg.lhp_choice)
    target = {key: t["candidate"] for key, t in targets.items()}
    check = confirm(task, model, target, **timing)
    extra.update({"targets": targets, "confirm": check})
    if check["keep"] == "candidate" and any(w != model.widths()[k] for k, w in target.items()):
        pool = full.model.widths() if cfg.candidates == "dormant" else None
        model = grow_to(task, model, target, trainer.lr, task.cfg.seed, pool)
        trainer = Trainer(task, model, task.cfg, lr=trainer.lr)
        for _ in range(cfg.retrain_epochs):
            trainer.epoch(tag="grow_lhp")
    return model, trainer, extra


def _sparse_start(task, cfg: GrowLHPConfig, profile: dict, pruned: Step, full: Step, timing: dict):
    """Sparse path: step (a)'s model, or step (b)'s where ``sparse_widths: faster`` and it won
    the timing (taken whenever row pruning removed something)."""
    if full.model.widths() == pruned.model.widths():
        return full, None
    compare = compare_sparse(task, full.model, pruned.model, profile.get("sparse_crossover", {}),
                             cfg.reachable_sparsity, **timing)
    keep_thinned = cfg.sparse_widths == "faster" and compare["faster"] == "thinned"
    return (pruned if keep_thinned else full), compare
