"""AN4: transcripts, character labels for CTC, and MFCC feature tensors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from symbiotic.config import ranged
from symbiotic.data.features import FeatureConfig, frame_count, mfcc, mfcc_transform, normalize
from symbiotic.data.sphere import read_sphere
from symbiotic.errors import UserError
from symbiotic.progress import bar

SPLITS = {"train": "an4_clstk", "test": "an4test_clstk"}  # the corpus's own splits
BLANK = "_"
# CTC blank first (index 0, torch's CTCLoss default), then space, apostrophe, a-z.
LABELS = (BLANK, " ", "'") + tuple("abcdefghijklmnopqrstuvwxyz")
_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()]+)\)\s*$")


@dataclass(frozen=True)
class AN4PrepareConfig:
    features: dict = ranged({})  # FeatureConfig fields; see data/features.py
    # The canonical utterance counts (train, test); anything else is another corpus.
    expected_utterances: tuple[int, ...] = ranged((948, 130), lo=1)
    # Training speakers held out as the validation split (AN4 has none): every score that
    # selects or stops anything reads it, never the test set. 0 is refused: the flow needs one.
    valid_speakers: int = ranged(7, lo=1, hi=1000)


def encode_text(text: str) -> list[int]:
    """Label ids of a transcript (lower-cased); other characters are an error."""
    index = {c: i for i, c in enumerate(LABELS)}
    try:
        return [index[c] for c in text.lower()]
    except KeyError as exc:
        raise UserError(f"transcript {text!r} has character {exc.args[0]!r} outside the label set",
                        "use AN4's transcripts (letters, space, apostrophe)") from None


def decode_labels(ids) -> str:
    return "".join(LABELS[i] for i in ids)


def read_transcripts(path: Path) -> dict[str, str]:
    """Utterance id → transcript (lower case, without ``<s>``/``</s>``)."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise UserError(f"{path}:{number} is not 'TEXT (utterance-id)'",
                            "replace the file with the canonical one")
        words = [w for w in match["text"].split() if w not in ("<s>", "</s>")]
        out[match["id"]] = " ".join(words).lower()
    return out


def read_split(folder: Path, split: str) -> pd.DataFrame:
    """Manifest rows (utterance, speaker, path, transcript) of one split, checked for pairing."""
    etc = folder / "etc"
    stem = "an4_train" if split == "train" else "an4_test"
    ids = [line.strip() for line in (etc / f"{stem}.fileids").read_text().splitlines() if line.strip()]
    texts = read_transcripts(etc / f"{stem}.transcription")
    rows = []
    for file_id in ids:
        utt = Path(file_id).name
        if utt not in texts:
            raise UserError(f"utterance {utt} has audio but no transcript in {stem}.transcription",
                            "use the canonical AN4 etc/ files")
        rows.append({"utterance": utt, "speaker": Path(file_id).parent.name,
                     "path": str(folder / "wav" / f"{file_id}.sph"), "transcript": texts[utt]})
    orphans = sorted(set(texts) - {r["utterance"] for r in rows})
    if orphans:
        raise UserError(f"transcript {orphans[0]} in {stem}.transcription has no audio file listed",
                        "use the canonical AN4 etc/ files")
    return pd.DataFrame(rows)


def audio_files(folder: Path) -> list[str]:
    """Relative paths of every listed audio file, for checksum verification."""
    names = []
    for split in SPLITS:
        frame = read_split(folder, split)
        names += [str(Path(p).relative_to(folder)) for p in frame["path"]]
    return names


def held_out_speakers(speakers, count: int) -> list[str]:
    """``count`` speakers spread evenly over the sorted list: deterministic, no random state."""
    names = sorted(set(speakers))
    if count >= len(names):
        raise UserError(f"prepare.an4.valid_speakers is {count}, but AN4 train has {len(names)} speakers",
                        "hold out fewer speakers (the default 7 of 74 gives about 90 utterances)")
    return [names[(2 * i + 1) * len(names) // (2 * count)] for i in range(count)]


def read_splits(folder: Path, cfg: AN4PrepareConfig) -> dict[str, pd.DataFrame]:
    """Manifest rows of train, valid and test: the corpus counts checked before the carve."""
    if len(cfg.expected_utterances) != len(SPLITS):
        raise UserError("'prepare.an4.expected_utterances' must have 2 numbers",
                        "give the train and test utterance counts")
    corpus = {}
    for split, expected in zip(SPLITS, cfg.expected_utterances):
        corpus[split] = read_split(folder, split)
        if len(corpus[split]) != expected:
            raise UserError(f"AN4 {split} has {len(corpus[split])} utterances, expected {expected}",
                            "use the canonical corpus or correct prepare.an4.expected_utterances")
    train = corpus["train"]
    held = train["speaker"].isin(held_out_speakers(train["speaker"], cfg.valid_speakers))
    return {"train": train[~held], "valid": train[held], "test": corpus["test"]}


def prepare(folder: Path, cfg: AN4PrepareConfig, feat_cfg: FeatureConfig):
    """Read, check and featurize every split. Returns tensors per split, manifest, metrics.

    Nothing is written here: the caller writes only after every check has passed. Valid and
    test are normalized with train's statistics (where the normalization has any).
    """
    transform = mfcc_transform(feat_cfg)
    frames, tensors, stats = [], {}, None
    for split, manifest in read_splits(folder, cfg).items():
        feats, seconds = [], []
        for path in bar(manifest["path"], desc=f"an4 {split} mfcc"):
            samples, rate = read_sphere(Path(path))
            if rate != feat_cfg.sample_rate:
                raise UserError(f"{path} is sampled at {rate} Hz, expected {feat_cfg.sample_rate}",
                                "set prepare.an4.features.sample_rate to match the audio")
            feat = mfcc(torch.from_numpy(samples.copy()), transform)
            assert feat.shape[0] == frame_count(len(samples), feat_cfg)
            feats.append(feat)
            seconds.append(len(samples) / rate)
        feats, stats = normalize(feats, feat_cfg.normalization, stats)
        manifest = manifest.assign(split=split, seconds=seconds, frames=[len(f) for f in feats])
        tensors[split] = _pack(feats, manifest)
        frames.append(manifest)
    manifest = pd.concat(frames, ignore_index=True)[
        ["split", "utterance", "speaker", "seconds", "frames", "transcript"]]
    return tensors, manifest, _metrics(manifest, feat_cfg)


def _pack(feats: list[torch.Tensor], manifest: pd.DataFrame) -> dict:
    """All utterances of a split in flat tensors with offsets (fast to load, no pickles)."""
    labels = [torch.tensor(encode_text(t), dtype=torch.int64) for t in manifest["transcript"]]
    return {
        "features": torch.cat(feats).to(torch.float32),  # (sum of frames, n_mfcc)
        "frame_offsets": _offsets([len(f) for f in feats]),
        "labels": torch.cat(labels),
        "label_offsets": _offsets([len(x) for x in labels]),
        "utterances": list(manifest["utterance"]),
    }


def _offsets(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0] + lengths, dtype=torch.int64).cumsum(0)


def _metrics(manifest: pd.DataFrame, feat_cfg: FeatureConfig) -> dict:
    metrics = {"feature_dim": feat_cfg.n_mfcc, "labels": len(LABELS)}
    for split, rows in manifest.groupby("split"):
        metrics[f"{split}_utterances"] = int(len(rows))
        metrics[f"{split}_speakers"] = int(rows["speaker"].nunique())
        metrics[f"{split}_hours"] = round(float(rows["seconds"].sum()) / 3600, 4)
        metrics[f"{split}_frames"] = int(rows["frames"].sum())
    return metrics
