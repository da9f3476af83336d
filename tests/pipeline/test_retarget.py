"""The whole flow of both tasks in a throwaway copy on tiny params; then retargeting stales only
the device stages of both."""

import json

import pandas as pd

TASKS = ("ptb", "an4")
DEVICE_STAGES = {f"{stage}@{task}" for stage in ("profile", "grow_lhp", "prune_weights", "evaluate")
                 for task in TASKS}
STEPS = ["baseline", "grow", "prune_rows", "grow_lhp", "final"]


def test_flow_then_retarget(repo):
    repo.dvc("repro")
    assert repo.stale() == set()
    ptb = json.loads((repo.path / "metrics/ptb/prepare.json").read_text())
    an4 = json.loads((repo.path / "metrics/an4/prepare.json").read_text())
    assert ptb["train_tokens"] == 929589 and an4["train_utterances"] + an4["valid_utterances"] == 948
    for task, metric in (("ptb", "perplexity"), ("an4", "wer")):
        table = pd.read_csv(repo.path / f"metrics/{task}/steps.csv")
        assert list(table["model"]) == STEPS
        assert (table["latency_recurrent_ms"] > 0).all() and (table[metric] >= 0).all()
        summary = json.loads((repo.path / f"metrics/{task}/summary.json").read_text())
        assert summary["compression_recurrent_x"] > 0 and "speedup_recurrent_x" in summary
        assert f"{metric}_no_worse" in summary
        decision = json.loads((repo.path / f"metrics/{task}/grow_lhp.json").read_text())
        assert decision["decision.mode"] in ("dense", "sparse") and decision["decision.reason"]
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
