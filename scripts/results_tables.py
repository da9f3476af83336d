"""The README's result tables of one task, from what the flow wrote (metrics/<task>/).

    python scripts/results_tables.py TASK

Prints three markdown tables: each step in the shape of the paper's Tables 1/3 (PTB) and 4/6
(AN4) — widths, parameters, nonzeros, accuracy, latency on this machine —, the final/baseline
ratios beside the paper's own, and where each pruning phase stopped and why (its log). The
paper's figures are the ones its abstract states (Yin et al., arXiv:1901.10997, CPU-targeted
flow); they are quoted, never measured here, and marked so.
Nothing is computed that the metrics files do not hold, so the README cannot drift from the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The paper's abstract, CPU-targeted models (Intel Xeon): all it states for each task.
PAPER = {
    "ptb": {"accuracy": "no accuracy degradation", "params_x": 30.5, "latency_x": 5.2},
    "an4": {"accuracy": "WER 12.9% → 10.4%", "params_x": 19.4, "latency_x": 2.4},
}
NONE = {"accuracy": "— (not in the paper)", "params_x": "—", "latency_x": "—"}  # ptb_char, the example task
ACCURACY = {"ptb": ("perplexity", "test perplexity"), "an4": ("wer", "test WER / CER (%)"),
            "ptb_char": ("bpc", "test bits per character")}
SHOWN = {"ptb": lambda r: f"{r['perplexity']:.1f}", "an4": lambda r: f"{r['wer']:.1f} / {r['cer']:.1f}",
         "ptb_char": lambda r: f"{r['bpc']:.3f}"}


def _ms(row: pd.Series, part: str) -> str:
    return (f"{row[f'latency_{part}_ms']:.2f} ({row[f'latency_{part}_min_ms']:.2f}–"
            f"{row[f'latency_{part}_max_ms']:.2f})")


def _accuracy(task: str, row: pd.Series) -> str:
    return SHOWN[task](row)


def steps_table(task: str, steps: pd.DataFrame) -> str:
    head = ("| step | dimensions | recurrent parameters (dense) | nonzeros, all | nonzeros, recurrent | "
            f"{ACCURACY[task][1]} | recurrent ms (min–max) | whole model ms (min–max) | formats |")
    lines = [head, "|" + "---|" * 9]
    for _, r in steps.iterrows():
        lines.append(f"| {r['step']} | {r['dimensions']} | {r['params_recurrent_dense']:,} | "
                     f"{r['params_total_nonzero']:,} | {r['params_recurrent_nonzero']:,} | "
                     f"{_accuracy(task, r)} | {_ms(r, 'recurrent')} | {_ms(r, 'full')} | {r['format']} |")
    return "\n".join(lines)


def ratios_table(task: str, steps: pd.DataFrame, summary: dict) -> str:
    base, final = steps.iloc[0], steps.iloc[-1]
    paper = PAPER.get(task, NONE)
    name = ACCURACY[task][0]
    rows = [
        ("accuracy", f"{_accuracy(task, base)} → {_accuracy(task, final)}"
                     f" ({'no worse' if summary[f'{name}_no_worse'] else 'WORSE'})", paper["accuracy"]),
        ("fewer parameters, all (×)", f"{summary['compression_total_x']:.1f}", f"{paper['params_x']}"),
        ("fewer recurrent nonzeros (×)", f"{summary['compression_recurrent_x']:.1f}", "—"),
        ("lower latency, recurrent (×)", f"{summary['speedup_recurrent_x']:.2f}", "—"),
        ("lower latency, whole model (×)", f"{summary['speedup_full_x']:.2f}", f"up to {paper['latency_x']}" if task in PAPER else "—"),
    ]
    lines = ["| final / baseline | measured here | the paper's (abstract, Xeon CPU; quoted, not measured) |",
             "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _score(record, split: str) -> str:
    """An iteration's score, or "diverged" where its retraining diverged (no score was taken; the
    log holds the reason there, and pandas reads the other rows' empty cells as NaN)."""
    return "diverged" if isinstance(record.get("diverged"), str) else f"{record[split]:.1f}"


def pruning_table(task: str, folder: Path, params: dict) -> str:
    """Each pruning phase's iterations: accepted, rejected (rolled back, ratio halved), and why
    it stopped: the iteration budget, or the schedule (no smaller step left to try)."""
    lines = ["| step, phase | iterations | accepted | rejected | score of each iteration (threshold split) | stopped by |",
             "|---|---|---|---|---|---|"]
    for step in ("prune_rows", "prune_weights"):
        log = pd.read_csv(folder / f"{step}_log.csv")
        budget = params[step][task]["max_iterations"]
        split = params["threshold"][task]["split"]
        for phase, rows in log.groupby("phase", sort=False):
            scores = ", ".join(f"{r['ratio']:.3g}: {_score(r, split)} {'✓' if r['accepted'] else '✗'}"
                               for _, r in rows.iterrows())
            # the budget counts a step's iterations; prune_weights' decoder phase has its own
            spent = len(rows) if step == "prune_weights" else len(log)
            stop = "iteration budget" if spent >= budget else "schedule (no smaller step left to try)"
            lines.append(f"| {step}, {phase} | {len(rows)} | {int(rows['accepted'].sum())} | "
                         f"{int((~rows['accepted']).sum())} | {scores} | {stop} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=sorted(ACCURACY))
    args = p.parse_args()
    folder = ROOT / "metrics" / args.task
    steps = pd.read_csv(folder / "steps.csv")
    summary = json.loads((folder / "summary.json").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    print(steps_table(args.task, steps), "", ratios_table(args.task, steps, summary), "",
          pruning_table(args.task, folder, params), sep="\n")


if __name__ == "__main__":
    main()
