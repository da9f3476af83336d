"""Shared fixtures: tiny datasets written by the tests, and the real ones when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import build_tiny_an4, write_sums


@pytest.fixture
def real_data() -> Path:
    """The local copy named by SYMBIOTIC_DATA; the test is skipped without it."""
    root = os.environ.get("SYMBIOTIC_DATA")
    if not root or not (Path(root) / "ptb").is_dir() or not (Path(root) / "an4").is_dir():
        pytest.skip("real datasets not available: set SYMBIOTIC_DATA to a folder with ptb/ and an4/")
    return Path(root)


TINY_PTB = {
    "train": "the cat sat\nthe dog sat on the mat\n<unk> ran\n",
    "valid": "the cat ran\n",
    "test": "a dog sat\n",
}


@pytest.fixture
def tiny_ptb(tmp_path) -> dict:
    """A three-split corpus in PTB's format, its sums and a matching params section."""
    folder = tmp_path / "data" / "ptb"
    folder.mkdir(parents=True)
    for split, text in TINY_PTB.items():
        (folder / f"ptb.{split}.txt").write_text(text)
    names = [f"ptb.{s}.txt" for s in TINY_PTB]
    sums = write_sums(folder, names, tmp_path / "ptb.sha256")
    # train: 3+6+2 words + 3 <eos> = 14; valid 3+1 = 4; test 3+1 = 4
    params = {"source": str(tmp_path / "data"),
              "ptb": {"vocab_size": 10000, "expected_tokens": [14, 4, 4]}}
    return {"root": tmp_path / "data", "folder": folder, "sums": sums, "params": params}


@pytest.fixture
def tiny_an4(tmp_path) -> dict:
    folder = tmp_path / "data" / "an4"
    folder.mkdir(parents=True)
    names = build_tiny_an4(folder)
    sums = write_sums(folder, names, tmp_path / "an4.sha256")
    params = {"source": str(tmp_path / "data"),
              "an4": {"expected_utterances": [3, 1], "valid_speakers": 1, "features": {"n_mfcc": 13, "n_mels": 20}}}
    return {"root": tmp_path / "data", "folder": folder, "sums": sums, "params": params}


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a busy machine the threads
    wait for each other (20x slower here): one thread per test, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["native", "torch"])
def runtime(request, monkeypatch):
    """Each exported model's two time loops: the compiled one (the default) and the torch one
    (``SYMBIOTIC_RUNTIME=torch``); the test also checks that the chosen one is the one that ran."""
    from symbiotic.runtime import native

    monkeypatch.setenv("SYMBIOTIC_RUNTIME", request.param)
    calls = []
    real = native.hlstm_layer
    monkeypatch.setattr(native, "hlstm_layer", lambda *a: calls.append(1) or real(*a))
    yield request.param
    assert bool(calls) == (request.param == "native"), f"the {request.param} loop did not run"
