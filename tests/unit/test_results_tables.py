"""scripts/results_tables.py: the README's tables hold the metrics files' numbers and say why
each pruning phase stopped."""

import importlib.util

import pandas as pd

from helpers import ROOT

spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts/results_tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def _steps() -> pd.DataFrame:
    row = {"layers": 1, "params_recurrent_dense": 1000, "format": "nn.LSTM", "cer": 20.0}
    for part in ("recurrent", "full"):
        row |= {f"latency_{part}_ms": 10.0, f"latency_{part}_min_ms": 9.0, f"latency_{part}_max_ms": 12.5}
    base = {**row, "step": "stock nn.LSTM baseline", "dimensions": "3x128", "wer": 44.0,
            "params_total_nonzero": 9000, "params_recurrent_nonzero": 8000}
    final = {**row, "step": "(d) weight pruning", "dimensions": "128/128", "wer": 43.5, "latency_recurrent_ms": 2.5,
             "params_total_nonzero": 1200, "params_recurrent_nonzero": 800}
    return pd.DataFrame([base, final])


def test_steps_and_ratios_quote_the_metrics_and_mark_the_paper():
    text = tables.steps_table("an4", _steps())
    assert "| (d) weight pruning | 128/128 | 1,000 | 1,200 | 800 | 43.5 / 20.0 | 2.50 (9.00–12.50) |" in text
    summary = {"wer_no_worse": True, "compression_total_x": 7.5, "compression_recurrent_x": 10.0,
               "speedup_recurrent_x": 4.0, "speedup_full_x": 2.0}
    ratios = tables.ratios_table("an4", _steps(), summary)
    assert "44.0 / 20.0 → 43.5 / 20.0 (no worse)" in ratios and "| 10.0 |" in ratios
    assert "quoted, not measured" in ratios and "19.4" in ratios


def test_pruning_table_counts_rejections_and_names_the_stop(tmp_path):
    pd.DataFrame({"iteration": [0, 1], "phase": ["ratio", "ratio"], "ratio": [0.2, 0.1],
                  "valid": [45.0, 43.0], "accepted": [False, True]}).to_csv(tmp_path / "prune_rows_log.csv")
    pd.DataFrame({"iteration": [0], "phase": ["recurrent"], "ratio": [0.7], "valid": [50.0],
                  "accepted": [False]}).to_csv(tmp_path / "prune_weights_log.csv")
    params = {"prune_rows": {"an4": {"max_iterations": 2}}, "prune_weights": {"an4": {"max_iterations": 3}},
              "threshold": {"an4": {"split": "valid"}}}
    text = tables.pruning_table("an4", tmp_path, params)
    assert "| prune_rows, ratio | 2 | 1 | 1 | 0.2: 45.0 ✗, 0.1: 43.0 ✓ | iteration budget |" in text
    assert "| prune_weights, recurrent | 1 | 0 | 1 | 0.7: 50.0 ✗ | schedule (no smaller step left to try) |" in text


def test_pruning_table_names_a_diverged_iteration(tmp_path):
    """A diverged retraining has no score (the log holds an empty value and the reason): the
    table says "diverged", not "nan"."""
    pd.DataFrame({"iteration": [0], "phase": ["ratio"], "ratio": [0.2], "valid": [45.0],
                  "accepted": [True], "diverged": [None]}).to_csv(tmp_path / "prune_rows_log.csv", index=False)
    pd.DataFrame({"iteration": [0, 1], "phase": ["recurrent", "recurrent"], "ratio": [0.7, 0.35],
                  "valid": [None, 40.0], "accepted": [False, True],
                  "diverged": ["an4 training diverged in epoch 2", None]}).to_csv(
        tmp_path / "prune_weights_log.csv", index=False)
    params = {"prune_rows": {"an4": {"max_iterations": 1}}, "prune_weights": {"an4": {"max_iterations": 2}},
              "threshold": {"an4": {"split": "valid"}}}
    text = tables.pruning_table("an4", tmp_path, params)
    assert "| prune_weights, recurrent | 2 | 1 | 1 | 0.7: diverged ✗, 0.35: 40.0 ✓ | iteration budget |" in text
    assert "0.2: 45.0 ✓" in text
