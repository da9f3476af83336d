"""Penn Treebank (Mikolov's word-level version): vocabulary and token tensors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from symbiotic.config import ranged
from symbiotic.errors import UserError

SPLITS = ("train", "valid", "test")
EOS = "<eos>"
UNK = "<unk>"


@dataclass(frozen=True)
class PTBPrepareConfig:
    vocab_size: int = ranged(10000, lo=2, hi=1_000_000)
    # The canonical token counts (train, valid, test, with one <eos> per line);
    # a different count means a different or damaged copy of the corpus.
    expected_tokens: tuple[int, ...] = ranged((929589, 73760, 82430), lo=1)


def read_words(path: Path) -> list[str]:
    """All tokens of a PTB file: each line's words followed by ``<eos>``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({exc.__class__.__name__})",
                        "replace it with the canonical file") from None
    words = []
    for line in text.splitlines():
        words.extend(line.split())
        words.append(EOS)
    return words


def build_vocab(words: list[str], size: int) -> list[str]:
    """The ``size`` most frequent words, most frequent first (ties alphabetical).

    When the text has more word types than ``size``, the rarest ones are mapped
    to ``<unk>``, which must then be in the vocabulary.
    """
    counts = Counter(words)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    if len(ranked) <= size:
        return ranked
    kept = ranked[:size]
    if UNK not in kept:
        kept = ranked[: size - 1] + [UNK]
    return kept


def encode(words: list[str], vocab: list[str]) -> torch.Tensor:
    """Token ids (int64); words outside the vocabulary become ``<unk>``."""
    index = {w: i for i, w in enumerate(vocab)}
    unk = index.get(UNK)
    ids = []
    for w in words:
        i = index.get(w, unk)
        if i is None:
            raise UserError(f"word {w!r} is not in the vocabulary and there is no {UNK}",
                            "raise prepare.ptb.vocab_size or use the canonical corpus")
        ids.append(i)
    return torch.tensor(ids, dtype=torch.int64)


def prepare(folder: Path, cfg: PTBPrepareConfig) -> tuple[dict[str, torch.Tensor], list[str], dict]:
    """Read, check and encode the three splits; returns tensors, vocabulary and metrics.

    Nothing is written here: the caller writes only after every check has passed.
    """
    if len(cfg.expected_tokens) != len(SPLITS):
        raise UserError("'prepare.ptb.expected_tokens' must have 3 numbers",
                        "give the train, valid and test token counts")
    words = {split: read_words(folder / f"ptb.{split}.txt") for split in SPLITS}
    for split, expected in zip(SPLITS, cfg.expected_tokens):
        if len(words[split]) != expected:
            raise UserError(f"ptb.{split}.txt has {len(words[split])} tokens, expected {expected}",
                            "use the canonical corpus or correct prepare.ptb.expected_tokens")
    vocab = build_vocab(words["train"], cfg.vocab_size)
    tokens = {split: encode(words[split], vocab) for split in SPLITS}
    unk = vocab.index(UNK) if UNK in vocab else -1
    metrics = {"vocab_size": len(vocab)}
    for split in SPLITS:
        metrics[f"{split}_tokens"] = int(tokens[split].numel())
        metrics[f"{split}_unk_rate"] = round(float((tokens[split] == unk).float().mean()), 6)
    return tokens, vocab, metrics
