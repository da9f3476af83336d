"""Benchmark: one training stage with 1 and with N processes on the real data, side by side.

    python benchmarks/processes.py TASK [--processes 1 2] [--rounds 3] [--tokens 100000] [--out FILE]

Runs the baseline stage (``stages/baseline.py``, one epoch) as a user would, on the first
``--tokens`` training tokens of TASK's prepared data (``data/prepared/TASK``, from ``dvc repro``),
once per process count per round, in random order each round. Reported per count: the stage's
own ``seconds`` (median, min-max) and its test score, which must agree between counts up to
dropout's per-rank noise. Run it alone: a second heavy job spoils the timings.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from _results import emit

ROOT = Path(__file__).resolve().parents[1]


def run_once(task: str, processes: int, tokens: int, folder: Path) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"][task].update({"processes": processes, "train_tokens": tokens})
    params["baseline"][task]["epochs"] = 1
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, str(ROOT / "stages" / "baseline.py"), task, "--data", str(ROOT / "data/prepared" / task),
           "--model", "m.pt", "--metrics", "m.json", "--history", "h.csv", "--resume-dir", ".resume",
           "--params", "params.yaml"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr)
    return json.loads((folder / "m.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=100000)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rng = random.Random(0)
    seconds = {n: [] for n in args.processes}
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            order = list(args.processes)
            rng.shuffle(order)
            for n in order:
                metrics = run_once(args.task, n, args.tokens, Path(tmp))
                seconds[n].append(metrics["seconds"])
                scores[n] = {k: v for k, v in metrics.items() if k.startswith("test_")}
    one = statistics.median(seconds[args.processes[0]])
    emit({"task": args.task, "train_tokens": args.tokens, "rounds": args.rounds,
          "by_processes": {n: {"seconds_median": statistics.median(v), "seconds_min": min(v),
                               "seconds_max": max(v), "speedup_x": round(one / statistics.median(v), 3),
                               **scores[n]} for n, v in seconds.items()}}, args.out)


if __name__ == "__main__":
    main()
