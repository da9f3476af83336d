"""The whole flow of every task in a throwaway copy on tiny params, its reports checked in a real
headless browser; then retargeting stales only the device stages."""

import json

import pandas as pd
import pytest
import yaml

from browser import CHROMIUM
from report_check import check_report

TASKS = ("ptb", "an4", "ptb_char")
METRICS = {"ptb": "perplexity", "an4": "wer", "ptb_char": "bpc"}
DEVICE_STAGES = {f"{stage}@{task}" for stage in ("profile", "grow_lhp", "prune_weights", "evaluate")
                 for task in TASKS}
STEPS = ["baseline", "grow", "prune_rows", "grow_lhp", "final"]


def test_flow_then_retarget(repo, tmp_path):
    assert CHROMIUM, "the report test needs Debian's chromium: scripts/setup installs it (apt-get install chromium)"
    repo.dvc("repro")
    assert repo.stale() == set()
    ptb = json.loads((repo.path / "metrics/ptb/prepare.json").read_text())
    an4 = json.loads((repo.path / "metrics/an4/prepare.json").read_text())
    chars = json.loads((repo.path / "metrics/ptb_char/prepare.json").read_text())
    assert ptb["train_tokens"] == 929589 and an4["train_utterances"] + an4["valid_utterances"] == 948
    assert chars["train_chars"] == 4837402 and chars["vocab_size"] == 49
    for task, metric in METRICS.items():
        table = pd.read_csv(repo.path / f"metrics/{task}/steps.csv")
        assert list(table["model"]) == STEPS
        assert (table["latency_recurrent_ms"] > 0).all() and (table[metric] >= 0).all()
        summary = json.loads((repo.path / f"metrics/{task}/summary.json").read_text())
        assert summary["compression_recurrent_x"] > 0 and "speedup_recurrent_x" in summary
        assert f"{metric}_no_worse" in summary
        decision = json.loads((repo.path / f"metrics/{task}/grow_lhp.json").read_text())
        assert decision["decision.mode"] in ("dense", "sparse") and decision["decision.reason"]
        assert summary["profile_fingerprint"] == summary["fingerprint"]  # profiled here
        history = pd.read_csv(repo.path / f"plots/{task}/grow_history.csv")
        assert {"lr", "train_loss", metric, "density"} <= set(history.columns)
        curve = pd.read_csv(repo.path / f"plots/{task}/grow_curves/plots/metrics/{metric}.tsv", sep="\t")
        assert list(curve["step"]) == list(range(len(history)))  # dvclive: one step per epoch
        assert list(curve[metric]) == pytest.approx(list(history[metric]))
        assert check_report(repo.path, task, tmp_path) > 30
    _every_curve_plot_has_points(repo)
    _the_targets_benchmark_runs_on_the_flow_s_models(repo, tmp_path)
    speech = pd.read_csv(repo.path / "metrics/an4/steps.csv")
    assert (speech["cer"] >= 0).all() and speech.loc[0, "format"] == "nn.LSTM"
    again = repo.dvc("repro")
    assert "Running stage" not in again.stdout and "didn't change, skipping" in again.stdout

    repo.set_params({"device": "cuda"})
    assert repo.stale() == DEVICE_STAGES

    repo.set_params({"device": "cpu", "grow": {"an4": {"growth_ratio": 0.2}}})
    assert repo.stale() == {"grow@an4"}
    running = {line.split("'")[1] for line in repo.dvc("repro", "--dry").stdout.splitlines()
               if line.startswith("Running stage")}
    # A dry run lists the stages whose own inputs changed; those downstream follow once grow's
    # output has changed. Nothing of PTB, and not AN4's baseline or profile.
    assert running == {"grow@an4"}


def _every_curve_plot_has_points(repo) -> None:
    """`dvc plots show` draws every curve plot of dvc.yaml from the dvclive files, with no error."""
    shown = json.loads(repo.dvc("plots", "show", "--json", "--split").stdout)
    assert not shown.get("errors"), shown["errors"]
    declared = [next(iter(p)) for p in yaml.safe_load((repo.path / "dvc.yaml").read_text())["plots"]]
    for name in declared:
        points = [p for r in shown["data"][name] for p in r["anchor_definitions"]["<DVC_METRIC_DATA>"]]
        assert points, f"plot {name!r} has no points"
        assert all("_curves/plots/metrics/" in p["filename"] for p in points), name


def _the_targets_benchmark_runs_on_the_flow_s_models(repo, tmp_path) -> None:
    """benchmarks/targets.py (the issues' targets, README) reads the checkpoints this flow wrote
    and reports every model: it once broke unnoticed when the baseline's checkpoint changed."""
    for task in ("ptb", "an4"):
        out = tmp_path / f"targets_{task}.json"
        repo.run("python", "benchmarks/targets.py", task, "--rounds", "1", "--threads", "1", "--out", str(out))
        result = json.loads(out.read_text())
        timed = result["threads"]["1"]
        assert {"baseline", "final", "dense_hlstm"} <= set(timed)
        assert timed["final"]["speedup_recurrent_x"] > 0 and timed["final"]["fraction_of_bound"] > 0
        assert result["compression_x"] > 0 and len(result["targets"]) == 2 + 1 + 3
