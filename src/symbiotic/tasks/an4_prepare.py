"""How AN4's data is prepared: its params, the source files checked, and what is written.

Apart from tasks/an4.py so that the prepare stage imports no model code.
"""

from __future__ import annotations

from pathlib import Path

from symbiotic import io
from symbiotic.config import build
from symbiotic.data import an4
from symbiotic.data.features import FeatureConfig
from symbiotic.errors import UserError

Settings = tuple[an4.AN4PrepareConfig, FeatureConfig]


def config(values: dict, where: str) -> Settings:
    """The corpus and feature settings, both checked before any slow work."""
    cfg = build(an4.AN4PrepareConfig, values, where)
    return cfg, build(FeatureConfig, cfg.features, f"{where}.features")


def source_files(folder: Path) -> list[str]:
    etc = [f"etc/an4_{s}.{kind}" for s in ("train", "test") for kind in ("fileids", "transcription")]
    for name in etc:  # the listing files first: the audio list is read from them
        if not (folder / name).is_file():
            raise UserError(f"{folder / name} is missing from the data copy",
                            "restore the complete AN4 folder (see README, Data)")
    return etc + an4.audio_files(folder)


def prepare(folder: Path, settings: Settings, out: Path) -> dict:
    """Packed features per split, the manifest and the labels into ``out``; returns the metrics
    (``out`` is the folder being built: data/prepared.py seals it with a manifest and swaps it in)."""
    tensors, manifest, result = an4.prepare(folder, *settings)
    for split, packed in tensors.items():
        io.save_tensors(packed, out / f"{split}.pt")
    io.save_csv(manifest, out / "manifest.csv")
    io.save_text("\n".join(an4.LABELS) + "\n", out / "labels.txt")
    return result
