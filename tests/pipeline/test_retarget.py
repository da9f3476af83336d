"""The whole flow in a throwaway copy on tiny params; then retargeting stales only device stages."""

import json

import pandas as pd

DEVICE_STAGES = {"profile_ptb", "grow_lhp_ptb", "prune_weights_ptb", "evaluate_ptb"}


def test_flow_then_retarget(repo):
    repo.dvc("repro")
    assert repo.stale() == set()
    ptb = json.loads((repo.path / "metrics/ptb/prepare.json").read_text())
    an4 = json.loads((repo.path / "metrics/an4/prepare.json").read_text())
    assert ptb["train_tokens"] == 929589 and an4["train_utterances"] == 948
    table = pd.read_csv(repo.path / "metrics/ptb/steps.csv")
    assert list(table["model"]) == ["baseline", "grow", "prune_rows", "grow_lhp", "final"]
    assert (table["latency_recurrent_ms"] > 0).all() and (table["perplexity"] > 1).all()
    summary = json.loads((repo.path / "metrics/ptb/summary.json").read_text())
    assert summary["compression_recurrent_x"] > 0 and "speedup_recurrent_x" in summary
    decision = json.loads((repo.path / "metrics/ptb/grow_lhp.json").read_text())
    assert decision["decision.mode"] in ("dense", "sparse") and decision["decision.reason"]
    again = repo.dvc("repro")
    assert "Running stage" not in again.stdout and "didn't change, skipping" in again.stdout

    repo.set_params({"device": "cuda"})
    assert repo.stale() == DEVICE_STAGES

    repo.set_params({"device": "cpu", "grow": {"ptb": {"growth_ratio": 0.2}}})
    assert repo.stale() == {"grow_ptb"}
    dry = repo.dvc("repro", "--dry").stdout
    assert "Running stage 'grow_ptb'" in dry and "Running stage 'baseline_ptb'" not in dry
    assert "Running stage 'profile_ptb'" not in dry
