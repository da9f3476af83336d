"""Step (d): magnitude weight pruning with rollback and halving (p_w starts at 70%).

The paper prunes the recurrent matrices. With ``decoder: true`` the step then prunes the output
matrix (PTB's 10,000-word decoder, which dominates whole-model latency) the same way, under the
same threshold, as a second phase with its own schedule: the recurrent result is the same as
without it, and the metrics hold both models' scores and whole-model latencies side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symbiotic.config import ranged
from symbiotic.flow.common import NONE_ACCEPTED, prune_with_rollback, seed_everything
from symbiotic.flow.latency import side_by_side
from symbiotic.runtime.formats import choose_decoder, choose_formats
from symbiotic.sparsity.masks import apply_masks, output_masks, output_sparsity, recurrent_density, recurrent_masks
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
    if_none_accepted: str = ranged("fail", choices=NONE_ACCEPTED)  # all rolled back: fail or pass on
    scope: str = ranged("per_matrix", choices=("per_matrix", "global"))
    confirm_rounds: int = ranged(5, lo=1, hi=100)  # interleaved timings of step (c)'s widths vs thinned
    decoder: bool = ranged(False)  # then prune the decoder too (a second phase, same threshold)


PHASES = {"recurrent": recurrent_masks, "decoder": output_masks}  # step (d)'s phases and what each prunes


def prune_weights(task, model, trainer: Trainer, cfg: PruneWeightsConfig, threshold: Threshold,
                  split: str, resume: Resume, phase: str = "recurrent") -> list[dict]:
    """Prune the smallest |w| of the ``phase``'s matrices (PHASES: the recurrent ones, or the
    decoder), retrain, roll back on failure."""
    seed_everything(task.cfg.seed)  # dropout during retraining: the same run every time
    schedule = HalvingSchedule(cfg.ratio, cfg.min_ratio, single_unit_finish=False)
    matrices = PHASES[phase]

    def act(schedule):
        pairs = matrices(model)
        if all(int(m.sum()) <= 1 for _, m in pairs.values()):
            return None
        new = prune_masks({n: w.detach() for n, (w, _) in pairs.items()},
                          {n: m for n, (_, m) in pairs.items()}, schedule.ratio, scope=cfg.scope)
        with torch.no_grad():
            for n, (_, mask) in pairs.items():
                mask.copy_(new[n])
        apply_masks(model)
        return {"phase": phase, "ratio": schedule.ratio, "density": recurrent_density(model),
                "decoder_density": 1.0 - output_sparsity(model)}

    return prune_with_rollback(trainer, schedule, threshold, split, act, cfg.retrain_epochs,
                               cfg.max_iterations, resume, dict)


def decoder_evidence(task, without, exported, profile: dict, device, threads: int, rounds: int,
                     shipped: dict) -> dict:
    """The decoder phase's effect, measured: scores and whole-model latency of the model before
    it (``without``, exported with the same layer formats and widths, dense decoder) and of the
    export that ships, timed side by side."""
    plain = task.export(without, shipped["formats"], thinned=shipped["widths"]["shipped"] == "thinned")
    inputs = tuple(t.to(device) for t in task.latency_inputs(profile["batch"], task.input_length(profile["seq_len"])))
    timing = side_by_side({name: task.latency_call(m.to(device), inputs, "full")
                           for name, m in (("without", plain), ("with", exported))},
                          device, threads, rounds, min_run_time=0.05)
    name = task.metric.name
    return {"decoder_density_without": 1.0 - output_sparsity(without),
            f"test_{name}_without": task.scores(without)[f"test_{name}"],
            "full_ms_without": timing["without"]["median_s"] * 1e3, "full_ms_with": timing["with"]["median_s"] * 1e3,
            "full_speedup_x": timing["without"]["median_s"] / timing["with"]["median_s"]}


def ship(task, model, profile: dict, cfg: PruneWeightsConfig, device, threads: int) -> tuple[object, dict]:
    """The export for the target device: formats from the profile's crossovers, widths by
    :func:`export_widths`; returns it and the evidence (formats, widths) for the metrics."""
    crossover = profile.get("sparse_crossover", {})
    formats, decoder = choose_formats(model, crossover), choose_decoder(model, crossover)
    exported, widths = export_widths(task, model, formats, decoder, device, threads, cfg.confirm_rounds,
                                     profile["seq_len"], profile["batch"])
    return exported, {"formats": formats, "decoder_format": decoder, "widths": widths}


def export_widths(task, model, formats: dict[str, str], decoder: str, device, threads: int, rounds: int,
                  seq_len: int, batch: int) -> tuple[object, dict]:
    """The export that ships, and the evidence: step (c)'s widths or the thinned ones.

    Weight pruning can leave units with no outgoing connection; thinning drops them, which can
    move a width off the LHP that step (c) chose (and so be slower). When thinning changes a
    width, both exports are timed side by side and the faster ships; otherwise step (c)'s
    widths ship as they are. ``seq_len`` counts recurrent steps, as the profile does.
    """
    thinned = task.export(model, formats, decoder=decoder)
    kept = task.export(model, formats, thinned=False, decoder=decoder)
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
