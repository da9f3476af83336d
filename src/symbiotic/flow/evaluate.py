"""The evaluate stage's work: the paper's Tables 1 and 4 for a task, measured side by side.

Every model of the flow is scored on the test split and timed on the target
device per batch of test sequences (the task's inference shape), in
interleaved rounds so that the ratios between models hold even on a noisy
machine. Latency is reported for the recurrent part (what the flow changes:
embedding + recurrent layers for PTB, the recurrent stack on the conv features
for AN4) and for the whole model (which adds the decoder, the vocabulary-sized one of PTB,
and AN4's convolutions). The final model runs as it ships (its export, on the CPU through the
native time loop); the other steps run thinned and dense through the same runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from symbiotic import io
from symbiotic.config import ranged
from symbiotic.flow.latency import side_by_side
from symbiotic.models.counting import count_parameters
from symbiotic.runtime.formats import every
from symbiotic.tasks.base import Metric

STEPS = [("baseline", "stock nn.LSTM baseline"), ("grow", "(a) weight growth"),
         ("prune_rows", "(b) row/column pruning"), ("grow_lhp", "(c) LHP growth"),
         ("final", "(d) weight pruning")]
DENSE = every("dense")


@dataclass(frozen=True)
class EvaluateConfig:
    batch: int = ranged(16, lo=1)  # the paper's latency: per test sequence at batch 16 ...
    seq_len: int = ranged(70, lo=1)  # ... of length 70 (PTB words) or the test median (AN4 frames)
    rounds: int = ranged(7, lo=1, hi=1000)  # interleaved timing rounds; medians over them
    min_run_time: float = ranged(0.1, lo=0.001, hi=60.0)
    threads: int | None = ranged(None, lo=1)


def _dims(model, keys: tuple[str, ...]) -> str:
    """The task's dimensions ``keys`` of the model, e.g. 'hidden 16/12, gate_hidden 8/8, embed 8'
    (per-layer widths first) or '2x16, embed 8' (a stock LSTM: one width for all layers)."""
    cfg = model.config.to_dict()
    widths = {k: cfg[k] for k in keys if isinstance(cfg.get(k), list) and any(cfg[k])}
    text = ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in widths.items())
    if not widths:
        text = f"{cfg['layers']}x{cfg['hidden'] if isinstance(cfg['hidden'], int) else cfg['hidden'][0]}"
    shared = [k for k in keys if isinstance(cfg.get(k), int) and k not in ("hidden", "layers")]
    return ", ".join([text] + [f"{k} {cfg[k]}" for k in shared])


def _layers(model) -> int:
    cfg = model.config.to_dict()
    return cfg["layers"] if "layers" in cfg else len(cfg["hidden"])


def _format(model) -> str:
    """e.g. 'u_x=csr u_h=csr w=csr decoder=dense' (layer 0; every layer gets the same formats)."""
    return " ".join(f"{k}={v}" for k, v in {**model.formats[0], "decoder": model.decoder_format}.items())


def evaluate(task, models: dict, exported, device, threads: int, cfg: EvaluateConfig) -> pd.DataFrame:
    """One row per step: model, widths, parameters, test scores, latency (median, range);
    ``exported`` is the final model as it ships (its inference export, loaded)."""
    runnable = {}
    for name, model in models.items():
        model = model.to(device).eval()
        if name == "final":
            runnable[name] = exported.to(device).eval()
        elif name == "baseline":
            runnable[name] = model
        else:
            runnable[name] = task.export(model, DENSE).to(device).eval()  # thinned dense, how it would run
    inputs = tuple(t.to(device) for t in task.latency_inputs(cfg.batch, cfg.seq_len))
    calls = {f"{n}/{part}": task.latency_call(m, inputs, part)
             for n, m in runnable.items() for part in ("recurrent", "full")}
    timing = side_by_side(calls, device, threads, cfg.rounds, cfg.min_run_time)
    rows = []
    for (name, label) in STEPS:
        if name not in models:
            continue
        model = models[name]
        counts = count_parameters(model)
        rec, full = timing[f"{name}/recurrent"], timing[f"{name}/full"]
        scores = {k.removeprefix("test_"): v for k, v in task.scores(model.cpu()).items() if k.startswith("test_")}
        rows.append({
            "step": label, "model": name, "layers": _layers(model), "dimensions": _dims(model, task.dims),
            "params_total_nonzero": counts["total_nonzero"], "params_recurrent_nonzero": counts["recurrent_nonzero"],
            "params_recurrent_dense": counts["recurrent_dense"], **scores,
            "latency_recurrent_ms": rec["median_s"] * 1e3,
            "latency_recurrent_min_ms": rec["min_s"] * 1e3, "latency_recurrent_max_ms": rec["max_s"] * 1e3,
            "latency_full_ms": full["median_s"] * 1e3,
            "latency_full_min_ms": full["min_s"] * 1e3, "latency_full_max_ms": full["max_s"] * 1e3,
            "latency_full_per_sequence_ms": full["median_s"] * 1e3 / cfg.batch,
            "format": _format(runnable[name]) if name == "final"
            else ("nn.LSTM" if name == "baseline" else "thinned dense"),
        })
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, metric: Metric) -> dict:
    base = table[table["model"] == "baseline"].iloc[0]
    final = table[table["model"] == "final"].iloc[0]
    name = metric.name
    result = {
        "compression_recurrent_x": base["params_recurrent_nonzero"] / final["params_recurrent_nonzero"],
        "compression_total_x": base["params_total_nonzero"] / final["params_total_nonzero"],
        "speedup_recurrent_x": base["latency_recurrent_ms"] / final["latency_recurrent_ms"],
        "speedup_full_x": base["latency_full_ms"] / final["latency_full_ms"],
        f"{name}_baseline": base[name], f"{name}_final": final[name],
        f"{name}_change": final[name] - base[name],
        f"{name}_no_worse": bool(metric.no_worse(final[name], base[name])),
    }
    return {k: (v if isinstance(v, bool) else float(v)) for k, v in result.items()}


def plot(table: pd.DataFrame, metric: Metric, path: Path, title: str) -> None:
    """Latency against the test score, marker area by recurrent nonzeros: the trade-off at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    size = 30 + 400 * table["params_recurrent_nonzero"] / table["params_recurrent_nonzero"].max()
    ax.scatter(table["latency_recurrent_ms"], table[metric.name], s=size, alpha=0.6)
    for _, r in table.iterrows():
        ax.annotate(r["model"], (r["latency_recurrent_ms"], r[metric.name]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("latency of the recurrent part per batch (ms)")
    ax.set_ylabel(f"test {metric.label}")
    ax.set_title(title)
    fig.tight_layout()
    io.save_figure(fig, path)
