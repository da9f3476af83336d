"""Helpers shared by the tests (importable as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from symbiotic.data.sphere import write_sphere
from symbiotic.preset import merge  # noqa: F401  (the tests' params overlays)

ROOT = Path(__file__).resolve().parents[1]


def write_sums(folder: Path, names: list[str], target: Path) -> Path:
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    target.write_text("\n".join(lines) + "\n")
    return target

TINY_AN4 = {
    "train": [("spk1", "an1-spk1-b", "YES", 0.5), ("spk1", "an2-spk1-b", "GO", 0.3),
              ("spk2", "an3-spk2-b", "ERASE C Q", 0.8)],
    "test": [("spk3", "an9-spk3-b", "RUBOUT", 0.4)],
}


def build_tiny_an4(folder: Path) -> list[str]:
    """Write an AN4-shaped folder (SPHERE noise bursts + etc/ lists); returns its file names."""
    rng = np.random.default_rng(0)
    names = []
    for split, rows in TINY_AN4.items():
        top = "an4_clstk" if split == "train" else "an4test_clstk"
        fileids, trans = [], []
        for speaker, utt, text, seconds in rows:
            rel = f"wav/{top}/{speaker}/{utt}.sph"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            write_sphere(folder / rel, rng.integers(-3000, 3000, int(16000 * seconds)), 16000)
            names.append(rel)
            fileids.append(f"{top}/{speaker}/{utt}")
            trans.append(f"<s> {text} </s> ({utt})" if split == "train" else f"{text} ({utt})")
        (folder / "etc").mkdir(exist_ok=True)
        stem = "an4_train" if split == "train" else "an4_test"
        (folder / f"etc/{stem}.fileids").write_text("\n".join(fileids) + "\n")
        (folder / f"etc/{stem}.transcription").write_text("\n".join(trans) + "\n")
        names += [f"etc/{stem}.fileids", f"etc/{stem}.transcription"]
    return names


# Params small enough for a whole stage to run in seconds; merged over params.yaml.
TINY_PARAMS = {
    "model": {"ptb": {"embed": 8, "hidden": [16], "gate_hidden": [16]},
              "ptb_char": {"embed": 8, "hidden": [16], "gate_hidden": [16]},
              "an4": {"conv_channels": 2, "hidden": 12, "gate_hidden": 12, "layers": 2}},
    "train": {"ptb": {"train_tokens": 3000, "batch": 4, "bptt": 10, "eval_batch": 200, "grad_batches": 2,
                      "lr": 5.0},
              "ptb_char": {"train_tokens": 3000, "batch": 4, "bptt": 10, "eval_batch": 400, "grad_batches": 2},
              "an4": {"train_utterances": 48, "grad_batches": 2, "eval_batch": 32}},
    "baseline": {"ptb": {"embed": 8, "hidden": 16, "epochs": 1},
                 "ptb_char": {"embed": 8, "hidden": 16, "epochs": 1},
                 "an4": {"conv_channels": 2, "hidden": 12, "layers": 2, "epochs": 1}},
    "grow": {"ptb": {"growth_epochs": 1, "epochs": 2}, "an4": {"growth_epochs": 1, "epochs": 2},
             "ptb_char": {"growth_epochs": 1, "epochs": 2}},
    # a loose bar, so every pruning iteration is accepted
    "threshold": {"ptb": {"value": 1.0e9}, "an4": {"value": 1.0e9}, "ptb_char": {"value": 1.0e9}},
    "prune_rows": {"ptb": {"max_iterations": 2, "retrain_epochs": 1},
                   "an4": {"max_iterations": 2, "retrain_epochs": 1},
                   "ptb_char": {"max_iterations": 2, "retrain_epochs": 1}},
    "grow_lhp": {"ptb": {"confirm_rounds": 1, "retrain_epochs": 1},
                 "an4": {"confirm_rounds": 1, "retrain_epochs": 1},
                 "ptb_char": {"confirm_rounds": 1, "retrain_epochs": 1}},
    "prune_weights": {"ptb": {"max_iterations": 2, "retrain_epochs": 1},
                      "an4": {"max_iterations": 2, "retrain_epochs": 1},
                      "ptb_char": {"max_iterations": 2, "retrain_epochs": 1}},
    "evaluate": {"ptb": {"batch": 2, "seq_len": 5, "rounds": 1, "min_run_time": 0.001},
                 "an4": {"batch": 2, "seq_len": 20, "rounds": 1, "min_run_time": 0.001},
                 "ptb_char": {"batch": 2, "seq_len": 5, "rounds": 1, "min_run_time": 0.001}},
    "profile": {
        "measure": {"passes": 2, "min_run_time": 0.001, "min_runs": 1, "warmup": 1,
                    "sparsities": [0.0, 0.9]},
        "ptb": {"batch": 2, "seq_len": 5, "grids": {
            "hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2},
            "gate_hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2},
            "input": {"stop": 8, "coarse": 4, "fine_from": 6, "fine_to": 6, "fine": 1}}},
        "ptb_char": {"batch": 2, "seq_len": 5, "grids": {
            "hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2},
            "gate_hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2},
            "input": {"stop": 8, "coarse": 4, "fine_from": 6, "fine_to": 6, "fine": 1}}},
        "an4": {"batch": 2, "seq_len": 10, "grids": {
            "hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2},
            "gate_hidden": {"stop": 16, "coarse": 8, "fine_from": 10, "fine_to": 12, "fine": 2}}},
    },
}




def tiny_params_file(tmp_path, extra: dict | None = None):
    """params.yaml of the repository with TINY_PARAMS (and ``extra``) merged in."""
    import copy

    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merge(params, copy.deepcopy(TINY_PARAMS))
    merge(params, extra or {})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def tiny_prepared_ptb(folder, vocab: int = 30, tokens: int = 2000, seed: int = 0):
    """A prepared-PTB folder of random token streams, with its manifest (for stage tests without
    the corpus)."""
    import torch

    from symbiotic.data.prepared import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for split, n in (("train", tokens), ("valid", tokens // 4), ("test", tokens // 4)):
        torch.save(torch.randint(0, vocab, (n,), generator=gen), folder / f"{split}.pt")
    (folder / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(vocab)) + "\n")
    write_manifest(folder, "ptb")  # last, as prepare does: the folder is complete
    return folder


def tiny_prepared_an4(folder, n_train: int = 12, n_test: int = 4, n_features: int = 13, seed: int = 0):
    """A prepared-AN4 folder of random frames and transcripts, with its manifest (for task tests
    without the corpus)."""
    import torch

    from symbiotic.data.prepared import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for split, n in (("train", n_train), ("valid", n_test), ("test", n_test)):
        frames = torch.randint(24, 60, (n,), generator=gen)
        chars = torch.randint(2, 6, (n,), generator=gen)
        labels = [torch.randint(3, 29, (int(c),), generator=gen) for c in chars]
        labels[0][1] = 1  # a space: two words, so WER and CER differ
        packed = {
            "features": torch.randn(int(frames.sum()), n_features, generator=gen),
            "frame_offsets": torch.cat([torch.zeros(1, dtype=torch.int64), frames.cumsum(0)]),
            "labels": torch.cat(labels),
            "label_offsets": torch.cat([torch.zeros(1, dtype=torch.int64), chars.cumsum(0)]),
            "utterances": [f"{split}{i}" for i in range(n)],
        }
        torch.save(packed, folder / f"{split}.pt")
    write_manifest(folder, "an4")  # last, as prepare does: the folder is complete
    return folder
