"""Each task's headline metrics, nested under the task's name so that `dvc exp show` names the
columns `ptb.speedup_recurrent_x`, `an4.wer_final`, ... (the same keys of three summary.json files
would each carry their file's path)."""

from __future__ import annotations

from symbiotic.errors import UserError

# What a user compares first: the score of both models, size and speed ratios, and where the
# latencies were measured (the evaluating machine) and profiled (the target).
RATIOS = ("compression_recurrent_x", "compression_total_x", "speedup_recurrent_x", "speedup_full_x")


def metric_of(summary: dict) -> str:
    """The task's score, named by evaluate's ``<metric>_no_worse`` key (generic code never asks
    which task it runs)."""
    names = [k[: -len("_no_worse")] for k in summary if k.endswith("_no_worse")]
    if len(names) != 1:
        raise UserError("summary.json has no single <metric>_no_worse key", "rerun the evaluate stage (dvc repro)")
    return names[0]


def headline(task: str, summary: dict) -> dict:
    metric = metric_of(summary)
    keys = (f"{metric}_baseline", f"{metric}_final", f"{metric}_no_worse", *RATIOS)
    missing = [k for k in (*keys, "fingerprint", "profile_fingerprint") if k not in summary]
    if missing:
        raise UserError(f"summary.json lacks {', '.join(missing)}", "rerun the evaluate stage (dvc repro)")
    return {task: {**{k: summary[k] for k in keys}, "evaluated_on": summary["fingerprint"],
                   "profiled_on": summary["profile_fingerprint"]}}
