"""`dvc repro` of the prepare stages in a throwaway copy: outputs, then a no-op rerun."""

import json


def test_repro_prepares_both_tasks_then_skips(repo):
    repo.dvc("repro", "prepare_ptb", "prepare_an4")
    ptb = json.loads((repo.path / "metrics/ptb/prepare.json").read_text())
    an4 = json.loads((repo.path / "metrics/an4/prepare.json").read_text())
    assert ptb["train_tokens"] == 929589 and an4["train_utterances"] == 948
    assert (repo.path / "data/prepared/ptb/train.pt").is_file()
    assert (repo.path / "data/prepared/an4/manifest.csv").is_file()

    again = repo.dvc("repro", "prepare_ptb", "prepare_an4")
    assert "didn't change, skipping" in again.stdout
    assert "Running stage" not in again.stdout
    assert "up to date" in repo.dvc("status", "prepare_ptb", "prepare_an4").stdout
