"""How PTB's data is prepared: its params, the source files checked, and what is written.

Apart from tasks/ptb.py so that the prepare stage imports no model code.
"""

from __future__ import annotations

from pathlib import Path

from symbiotic import io
from symbiotic.config import build
from symbiotic.data import ptb


def config(values: dict, where: str) -> ptb.PTBPrepareConfig:
    return build(ptb.PTBPrepareConfig, values, where)


def source_files(folder: Path) -> list[str]:
    return [f"ptb.{s}.txt" for s in ptb.SPLITS]


def prepare(folder: Path, cfg: ptb.PTBPrepareConfig, out: Path) -> dict:
    """Token tensors per split and the vocabulary into ``out``; returns the metrics
    (``out`` is the folder being built: data/prepared.py seals it with a manifest and swaps it in)."""
    tokens, vocab, result = ptb.prepare(folder, cfg)
    for split, tensor in tokens.items():
        io.save_tensors(tensor, out / f"{split}.pt")
    io.save_text("\n".join(vocab) + "\n", out / "vocab.txt")
    return result
