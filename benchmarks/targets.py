"""Benchmark: a task's final model against its stock-LSTM baseline of the same preset, side by side.

Checks the issues' targets on this machine in one run:
  ptb: perplexity no worse than the baseline, >= 10x fewer recurrent nonzeros, >= 2x lower latency;
  an4: WER no worse than the baseline,        >=  7x fewer recurrent nonzeros, >= 1.5x lower latency.
Latency: the one measuring module, many interleaved rounds in random order, median and range, at the
evaluate stage's inference shape (batch 16), for the recurrent part (what the flow changes) and the
whole model (plus the parts every step shares: PTB's decoder, AN4's convolutions).

    python benchmarks/targets.py TASK [--models models/TASK] [--rounds 21] [--out FILE]

Run it after `dvc repro` (or `dvc exp run ...` for a preset); it reads the checkpoints the flow wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from symbiotic import io
from symbiotic.config import load_params
from symbiotic.flow.evaluate import EvaluateConfig
from symbiotic.flow.latency import side_by_side
from symbiotic.flow.stage import Context, load_step
from symbiotic.hardware.measure import default_threads, fingerprint, resolve_device
from symbiotic.models.counting import count_parameters

TARGETS = {"ptb": {"compression": 10.0, "speedup": 2.0}, "an4": {"compression": 7.0, "speedup": 1.5}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=sorted(TARGETS))
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--models", type=Path, default=None, help="default: models/TASK")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.get("device"))
    models = args.models or Path("models") / args.task
    ctx = Context("benchmark", args.task, params, Path("data/prepared") / args.task, None)
    task = ctx.task()
    shape = ctx.cfg(EvaluateConfig, "evaluate")
    baseline = load_step(task, models / "baseline.pt").model.eval()
    final = load_step(task, models / "final.pt").model.eval()
    exported = task.load_inference(io.load_tensors(models / "final_export.pt")).eval()
    threads = default_threads()
    inputs = tuple(t.to(device) for t in task.latency_inputs(shape.batch, shape.seq_len))
    calls = {f"{name}/{part}": task.latency_call(model.to(device), inputs, part) for name, model in
             (("baseline", baseline), ("final", exported)) for part in ("recurrent", "full")}
    timing = side_by_side(calls, device, threads, args.rounds, min_run_time=0.2)
    scores = {"baseline": task.scores(baseline.cpu()), "final": task.scores(final)}
    metric = f"test_{task.metric}"
    nz = {"baseline": count_parameters(baseline)["recurrent_nonzero"],
          "final": count_parameters(final)["recurrent_nonzero"]}
    result = {
        "task": args.task, "rounds": args.rounds, "threads": threads, "batch": shape.batch,
        "seq_len": shape.seq_len, "cpu": fingerprint(device, threads)["cpu_model"],
        "scores": scores, "recurrent_nonzero": nz,
        "latency_ms": {k: {s.removesuffix("_s"): round(v * 1e3, 3) for s, v in t.items() if s.endswith("_s")}
                       for k, t in timing.items()},
        "compression_x": nz["baseline"] / nz["final"],
        "speedup_recurrent_x": timing["baseline/recurrent"]["median_s"] / timing["final/recurrent"]["median_s"],
        "speedup_full_x": timing["baseline/full"]["median_s"] / timing["final/full"]["median_s"],
    }
    goal = TARGETS[args.task]
    result["targets"] = {
        f"{task.metric}_no_worse": scores["final"][metric] <= scores["baseline"][metric],
        f"compression_at_least_{goal['compression']:g}x": result["compression_x"] >= goal["compression"],
        f"speedup_at_least_{goal['speedup']:g}x_recurrent": result["speedup_recurrent_x"] >= goal["speedup"],
        f"speedup_at_least_{goal['speedup']:g}x_full": result["speedup_full_x"] >= goal["speedup"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
