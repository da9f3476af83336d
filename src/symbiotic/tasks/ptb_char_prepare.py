"""How the character-level PTB task's data is prepared: PTB's own files, read as characters.

The example of a user's own task (README, "Your own task"): a preparation module says which
dataset it reads (``DATASET``), which of its files must verify (``source_files``), its params
(``config``) and what it writes into the folder being built (``prepare``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from symbiotic import io
from symbiotic.config import build, ranged
from symbiotic.data import ptb
from symbiotic.errors import UserError

DATASET = "ptb"  # reads the ptb/ folder of the local copy (or PTB's download)
SPACE = "_"      # a word boundary, as in Mikolov's character-level PTB
UNKNOWN = ptb.UNK  # PTB's <unk> stays one symbol: its letters are not text


@dataclass(frozen=True)
class CharPrepareConfig:
    """params ``prepare.ptb_char``."""

    vocab_size: int = ranged(49, lo=2, hi=10_000)  # at most this many symbols (PTB's training text has 49)


def config(values: dict, where: str) -> CharPrepareConfig:
    return build(CharPrepareConfig, values, where)


def source_files(folder: Path) -> list[str]:
    return ptb_sources()


def ptb_sources() -> list[str]:
    return [f"ptb.{s}.txt" for s in ptb.SPLITS]


def symbols(words: list[str]) -> list[str]:
    """PTB's word tokens as characters: words joined by SPACE, <unk> and <eos> one symbol each."""
    out, start = [], True
    for word in words:
        if word == ptb.EOS:
            out.append(word)
            start = True
            continue
        if not start:
            out.append(SPACE)
        out.extend([word] if word == UNKNOWN else list(word))
        start = False
    return out


def prepare(folder: Path, cfg: CharPrepareConfig, out: Path) -> dict:
    """Symbol ids per split and the symbol list into ``out``; returns the metrics. Nothing is
    written before every split has been read and checked."""
    text = {split: symbols(ptb.read_words(folder / f"ptb.{split}.txt")) for split in ptb.SPLITS}
    counts = Counter(text["train"])
    vocab = sorted(counts, key=lambda s: (-counts[s], s))
    if len(vocab) > cfg.vocab_size:
        raise UserError(f"PTB's training text has {len(vocab)} symbols, more than prepare.ptb_char.vocab_size "
                        f"({cfg.vocab_size})", f"raise prepare.ptb_char.vocab_size to {len(vocab)} or more")
    unseen = sorted({s for split in ("valid", "test") for s in text[split]} - set(vocab))
    if unseen:
        raise UserError(f"symbols {unseen[:5]} of the valid/test text never occur in the training text",
                        "use the canonical PTB files")
    tokens = {split: ptb.encode(text[split], vocab) for split in ptb.SPLITS}
    for split, tensor in tokens.items():
        io.save_tensors(tensor, out / f"{split}.pt")
    io.save_text("\n".join(vocab) + "\n", out / "vocab.txt")
    return {"vocab_size": len(vocab), **{f"{split}_chars": int(t.numel()) for split, t in tokens.items()}}
