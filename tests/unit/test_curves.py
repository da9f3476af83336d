"""Training curves go to dvclive's files, one step per epoch, and a resume logs them again whole."""

import pandas as pd

from symbiotic.training import curves

ROWS = [{"tag": "grow", "epoch": 0, "lr": 20.0, "train_loss": 5.5, "perplexity": 250.0, "width_hidden": 64,
         "density": 0.5, "seconds": 3.0},
        {"tag": "grow", "epoch": 1, "lr": 10.0, "train_loss": 5.0, "perplexity": float("inf"),
         "width_hidden": "64x64", "density": 0.55, "seconds": 3.1}]


def _tsv(folder, name):
    return pd.read_csv(folder / "plots" / "metrics" / f"{name}.tsv", sep="\t")


def test_each_epoch_is_a_dvclive_step_of_its_numbers(tmp_path):
    curves.open_folder(tmp_path / "c")
    try:
        for row in ROWS:
            curves.log(row)
    finally:
        curves.open_folder(None)
    lr = _tsv(tmp_path / "c", "lr")
    assert list(lr["step"]) == [0, 1] and list(lr["lr"]) == [20.0, 10.0]
    assert list(_tsv(tmp_path / "c", "perplexity")["step"]) == [0]  # a non-finite score is no point
    assert list(_tsv(tmp_path / "c", "width_hidden")["step"]) == [0]  # '64x64' is text, not a curve
    assert not (tmp_path / "c" / "plots" / "metrics" / "tag.tsv").exists()


def test_a_replay_rewrites_the_folder_from_the_restored_rows(tmp_path):
    folder = tmp_path / "c"
    curves.open_folder(folder)
    try:
        for row in ROWS + ROWS:  # an interrupted run's leftovers
            curves.log(row)
        curves.replay(ROWS[:1])
    finally:
        curves.open_folder(None)
    assert list(_tsv(folder, "train_loss")["train_loss"]) == [5.5]


def test_without_a_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    curves.open_folder(None)
    curves.log(ROWS[0])
    assert list(tmp_path.iterdir()) == []
