"""Benchmark: a task's final model against its stock-LSTM baseline of the same preset, side by side.

Checks the issues' targets on this machine in one run, for 1 and 2 threads:
  ptb: perplexity no worse than the baseline, >= 10x fewer recurrent nonzeros, recurrent part >= 5x faster;
  an4: WER no worse than the baseline,        >=  7x fewer recurrent nonzeros, recurrent part >= 3x faster;
  both: every model within 2x of its bound (hardware/bound.py: its own multiply-adds at the measured
  peak GEMM rate plus its gate nonlinearities at the measured vector rate).
Three models: the baseline (stock nn.LSTM), the final model as it ships (its export: formats from
the profile, the native time loop on the CPU), and the final model's widths exported all-dense (the
dense H-LSTM). Latency: the one measuring module, interleaved rounds in random order, median and
range, at the evaluate stage's inference shape (batch 16), for the recurrent part (what the flow
changes) and the whole model (plus the parts every step shares: PTB's decoder, AN4's convolutions).

    python benchmarks/targets.py TASK [--models models/TASK] [--rounds 21] [--threads 1 2] [--out FILE]

Run it after `dvc repro` (or `dvc exp run ...` for a preset); it reads the checkpoints the flow wrote.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from symbiotic import io
from symbiotic.config import load_params
from symbiotic.flow.evaluate import EvaluateConfig
from symbiotic.flow.latency import side_by_side
from symbiotic.flow.stage import Context, load_step
from symbiotic.hardware.bound import bound_s, rates, recurrent_work
from symbiotic.hardware.measure import fingerprint, resolve_device
from symbiotic.models.counting import count_parameters
from symbiotic.runtime.formats import every

from _results import emit

TARGETS = {"ptb": {"compression": 10.0, "speedup": 5.0}, "an4": {"compression": 7.0, "speedup": 3.0}}
BOUND_WITHIN = 2.0  # every model's recurrent part within 2x of its bound


def timed(task, runnable: dict, inputs, device, threads: int, rounds: int, steps: int, batch: int) -> dict:
    """Latency of every model's recurrent part and whole, and the recurrent part's bound."""
    calls = {f"{name}/{part}": task.latency_call(model.to(device), inputs, part)
             for name, model in runnable.items() for part in ("recurrent", "full")}
    timing = side_by_side(calls, device, threads, rounds, min_run_time=0.2)
    rate = rates(device, threads)
    out = {"rates_g_per_s": {k: round(v / 1e9, 2) for k, v in rate.items()}}
    for name, model in runnable.items():
        rec = timing[f"{name}/recurrent"]
        bound = bound_s(recurrent_work(model, steps, batch), rate)
        out[name] = {**{f"{part}_ms": {k.removesuffix("_s"): round(v * 1e3, 3) for k, v in timing[f"{name}/{part}"].items()
                                       if k.endswith("_s")} for part in ("recurrent", "full")},
                     "bound_ms": round(bound * 1e3, 3), "fraction_of_bound": round(bound / rec["median_s"], 3)}
    for name in runnable:
        if name != "baseline":
            for part in ("recurrent", "full"):
                out[name][f"speedup_{part}_x"] = round(timing[f"baseline/{part}"]["median_s"]
                                                       / timing[f"{name}/{part}"]["median_s"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=sorted(TARGETS))
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--models", type=Path, default=None, help="default: models/TASK")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.get("device"))
    models = args.models or Path("models") / args.task
    ctx = Context("benchmark", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    shape = ctx.cfg(EvaluateConfig, "evaluate")
    baseline = load_step(task, models / "baseline.pt", hlstm=False).model.eval()
    final = load_step(task, models / "final.pt").model.eval()
    exported = task.load_inference(io.load_tensors(models / "final_export.pt")).eval()
    runnable = {"baseline": baseline, "final": exported, "dense_hlstm": task.export(final, every("dense")).eval()}
    inputs = tuple(t.to(device) for t in task.latency_inputs(shape.batch, shape.seq_len))
    steps = math.ceil(shape.seq_len / task.input_length(1))  # recurrent steps (AN4's convolutions halve time)
    scores = {"baseline": task.scores(baseline.cpu()), "final": task.scores(final)}
    metric = f"test_{task.metric}"
    nz = {"baseline": count_parameters(baseline)["recurrent_nonzero"],
          "final": count_parameters(final)["recurrent_nonzero"]}
    result = {"task": args.task, "rounds": args.rounds, "batch": shape.batch, "seq_len": shape.seq_len,
              "steps": steps, "cpu": fingerprint(device, max(args.threads))["cpu_model"],
              "formats": exported.formats[0], "decoder_format": exported.decoder_format,
              "scores": scores, "recurrent_nonzero": nz, "compression_x": nz["baseline"] / nz["final"],
              "threads": {str(n): timed(task, runnable, inputs, device, n, args.rounds, steps, shape.batch)
                          for n in args.threads}}
    goal = TARGETS[args.task]
    result["targets"] = {
        f"{task.metric}_no_worse": task.metric.no_worse(scores["final"][metric], scores["baseline"][metric]),
        f"compression_at_least_{goal['compression']:g}x": result["compression_x"] >= goal["compression"],
    }
    for n, t in result["threads"].items():
        result["targets"][f"speedup_at_least_{goal['speedup']:g}x_recurrent_{n}_threads"] = \
            t["final"]["speedup_recurrent_x"] >= goal["speedup"]
        for name in runnable:
            result["targets"][f"{name}_within_{BOUND_WITHIN:g}x_of_bound_{n}_threads"] = \
                t[name]["fraction_of_bound"] >= 1 / BOUND_WITHIN
    emit(result, args.out)


if __name__ == "__main__":
    main()
