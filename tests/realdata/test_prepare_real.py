"""Both prepare stages on the real datasets (SYMBIOTIC_DATA), with the exact canonical counts."""

import pandas as pd

from helpers import ROOT
from symbiotic.config import load_params
from symbiotic.data.prepare import prepare_task


def test_ptb_real_counts(tmp_path, real_data):
    params = load_params(ROOT / "params.yaml")
    params["prepare"]["source"] = str(real_data)
    result = prepare_task("ptb", params, tmp_path / "ptb", tmp_path / "ptb.json",
                          ROOT / "data/checksums/ptb.sha256", tmp_path / "dl")
    assert (result["train_tokens"], result["valid_tokens"], result["test_tokens"]) == (929589, 73760, 82430)
    assert result["vocab_size"] == 10000


def test_an4_real_counts(tmp_path, real_data):
    params = load_params(ROOT / "params.yaml")
    params["prepare"]["source"] = str(real_data)
    result = prepare_task("an4", params, tmp_path / "an4", tmp_path / "an4.json",
                          ROOT / "data/checksums/an4.sha256", tmp_path / "dl")
    assert (result["train_utterances"] + result["valid_utterances"], result["test_utterances"]) == (948, 130)
    assert (result["train_speakers"], result["valid_speakers"], result["test_speakers"]) == (67, 7, 10)
    assert abs((result["train_hours"] + result["valid_hours"]) * 60 - 42.4) < 0.1  # 42.4 min of training audio
    manifest = pd.read_csv(tmp_path / "an4" / "manifest.csv")
    assert manifest["frames"].sum() == result["train_frames"] + result["valid_frames"] + result["test_frames"]
    assert manifest["seconds"].between(0.7, 6.5).all()
