"""Benchmark: the final PTB model against the stacked baseline of the same preset, side by side.

Checks the issue's targets on this machine in one run:
  perplexity no worse than the baseline, >= 10x fewer recurrent nonzeros, >= 2x lower latency.
Latency: the one measuring module, many interleaved rounds in random order, median and range,
for the recurrent part (embedding + recurrent layers) and the whole model (plus the decoder).

    python benchmarks/ptb_targets.py [--models models/ptb] [--rounds 21] [--out FILE]

Run it after `dvc repro` (or `dvc exp run ...` for a preset); it reads the checkpoints the flow wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from symbiotic import io
from symbiotic.config import build, load_params, section
from symbiotic.flow.latency import call, side_by_side, token_batch
from symbiotic.hardware.measure import default_threads, fingerprint, resolve_device
from symbiotic.models.counting import count_parameters
from symbiotic.models.inference import load_inference
from symbiotic.tasks.base import TrainConfig
from symbiotic.tasks.ptb import PTBTask
from symbiotic.training import checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data", type=Path, default=Path("data/prepared/ptb"))
    p.add_argument("--models", type=Path, default=Path("models/ptb"))
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args()
    params = load_params(args.params)
    device = resolve_device(params.get("device"))
    task = PTBTask(args.data, build(TrainConfig, section(params, "train.ptb"), "train.ptb"))
    baseline = task.model_from_checkpoint(checkpoint.load(args.models / "baseline.pt")).eval()
    final = task.model_from_checkpoint(checkpoint.load(args.models / "final.pt")).eval()
    exported = load_inference(io.load_tensors(args.models / "final_export.pt")).eval()
    threads = default_threads()
    tokens = token_batch(task.vocab, 16, 70)
    calls = {f"{name}/{part}": call(model, tokens, part) for name, model in
             (("baseline", baseline), ("final", exported)) for part in ("recurrent", "full")}
    timing = side_by_side(calls, device, threads, args.rounds, min_run_time=0.2)
    ppl = {"baseline": task.score(baseline, "test"), "final": task.score(final, "test")}
    nz = {"baseline": count_parameters(baseline)["recurrent_nonzero"],
          "final": count_parameters(final)["recurrent_nonzero"]}
    result = {
        "rounds": args.rounds, "threads": threads, "cpu": fingerprint(device, threads)["cpu_model"],
        "perplexity": ppl, "recurrent_nonzero": nz,
        "latency_ms": {k: {s.removesuffix("_s"): round(v * 1e3, 3) for s, v in t.items() if s.endswith("_s")}
                       for k, t in timing.items()},
        "compression_x": nz["baseline"] / nz["final"],
        "speedup_recurrent_x": timing["baseline/recurrent"]["median_s"] / timing["final/recurrent"]["median_s"],
        "speedup_full_x": timing["baseline/full"]["median_s"] / timing["final/full"]["median_s"],
    }
    result["targets"] = {
        "perplexity_no_worse": ppl["final"] <= ppl["baseline"],
        "compression_at_least_10x": result["compression_x"] >= 10,
        "speedup_at_least_2x_recurrent": result["speedup_recurrent_x"] >= 2,
        "speedup_at_least_2x_full": result["speedup_full_x"] >= 2,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
