"""Helpers shared by the tests (importable as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from symbiotic.data.sphere import write_sphere

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
