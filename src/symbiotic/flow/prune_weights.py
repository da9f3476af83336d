"""Step (d): magnitude weight pruning with rollback and halving (p_w starts at 70%)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symbiotic.config import ranged
from symbiotic.flow.common import prune_with_rollback, seed_everything
from symbiotic.flow.latency import side_by_side
from symbiotic.runtime.formats import choose_formats
from symbiotic.sparsity.masks import apply_masks, recurrent_density, recurrent_masks
from symbiotic.sparsity.pruning import prune_masks
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import HalvingSchedule, Threshold


@dataclass(frozen=True)
class PruneWeightsConfig:
    ratio: float = ranged(0.7, lo=0.0, hi=0.99)  # p_w: share of active weights removed per iteration
    min_ratio: float = ranged(0.05, lo=0.0, hi=1.0)  # stop once halving goes below this
    retrain_epochs: int = ranged(1, lo=0, hi=1000)
    max_iterations: int = ranged(6, lo=0, hi=10000)  # budget: the stage always terminates
    scope: str = ranged("per_matrix", choices=("per_matrix", "global"))
    confirm_rounds: int = ranged(5, lo=1, hi=100)  # interleaved timings of step (c)'s widths vs thinned


def prune_weights(task, model, trainer: Trainer, cfg: PruneWeightsConfig, threshold: Threshold,
                  split: str, resume: Resume) -> list[dict]:
    """Prune the smallest |w| of the recurrent matrices, retrain, roll back on failure."""
    seed_everything(task.cfg.seed)  # dropout during retraining: the same run every time
    schedule = HalvingSchedule(cfg.ratio, cfg.min_ratio, single_unit_finish=False)

    def act(schedule):
        pairs = recurrent_masks(model)
        if all(int(m.sum()) <= 1 for _, m in pairs.values()):
            return None
        new = prune_masks({n: w.detach() for n, (w, _) in pairs.items()},
                          {n: m for n, (_, m) in pairs.items()}, schedule.ratio, scope=cfg.scope)
        with torch.no_grad():
            for n, (_, mask) in pairs.items():
                mask.copy_(new[n])
        apply_masks(model)
        return {"ratio": schedule.ratio, "density": recurrent_density(model)}

    return prune_with_rollback(trainer, schedule, threshold, split, act, cfg.retrain_epochs,
                               cfg.max_iterations, resume, dict)


def ship(task, model, profile: dict, cfg: PruneWeightsConfig, device, threads: int) -> tuple[object, dict]:
    """The export for the target device: formats from the profile's crossovers, widths by
    :func:`export_widths`; returns it and the evidence (formats, widths) for the metrics."""
    formats = choose_formats(model, profile.get("sparse_crossover", {}))
    exported, widths = export_widths(task, model, formats, device, threads, cfg.confirm_rounds,
                                     profile["seq_len"], profile["batch"])
    return exported, {"formats": formats, "widths": widths}


def export_widths(task, model, formats: dict[str, str], device, threads: int, rounds: int, seq_len: int,
                  batch: int) -> tuple[object, dict]:
    """The export that ships, and the evidence: step (c)'s widths or the thinned ones.

    Weight pruning can leave units with no outgoing connection; thinning drops them, which can
    move a width off the LHP that step (c) chose (and so be slower). When thinning changes a
    width, both exports are timed side by side and the faster ships; otherwise step (c)'s
    widths ship as they are. ``seq_len`` counts recurrent steps, as the profile does.
    """
    thinned = task.export(model, formats)
    kept = task.export(model, formats, thinned=False)
    record = {"step_c": model.widths(), "thinned": thinned.widths()}  # the export's own, not a second thinning
    if record["thinned"] == record["step_c"]:
        return kept, {**record, "shipped": "step_c", "reason": "weight pruning emptied no unit"}
    inputs = tuple(t.to(device) for t in task.latency_inputs(batch, task.input_length(seq_len)))
    timing = side_by_side({name: task.latency_call(m.to(device), inputs, "recurrent")
                           for name, m in (("step_c", kept), ("thinned", thinned))},
                          device, threads, rounds, min_run_time=0.05)
    ms = {name: timing[name]["median_s"] * 1e3 for name in ("step_c", "thinned")}
    shipped = "thinned" if ms["thinned"] < ms["step_c"] else "step_c"
    return (thinned if shipped == "thinned" else kept), {
        **record, "shipped": shipped, "step_c_ms": ms["step_c"], "thinned_ms": ms["thinned"],
        "reason": "timed side by side: the faster ships"}
