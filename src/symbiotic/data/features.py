"""MFCC features with torchaudio, framed as in the paper (20 ms window, 10 ms hop)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
import torchaudio

from symbiotic.config import ranged


class Normalization(enum.Enum):
    UTTERANCE = "utterance"  # per-utterance mean/variance: robust to speaker and channel
    GLOBAL = "global"  # one mean/variance from the training set, applied to every split
    NONE = "none"


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = ranged(16000, lo=8000, hi=48000)
    window_ms: float = ranged(20.0, lo=5.0, hi=100.0)
    hop_ms: float = ranged(10.0, lo=1.0, hi=50.0)
    n_mfcc: int = ranged(40, lo=1, hi=128)
    n_mels: int = ranged(40, lo=1, hi=256)
    normalization: Normalization = Normalization.UTTERANCE


def _samples(cfg: FeatureConfig, ms: float) -> int:
    return int(round(cfg.sample_rate * ms / 1000))


def mfcc_transform(cfg: FeatureConfig) -> torchaudio.transforms.MFCC:
    win = _samples(cfg, cfg.window_ms)
    n_fft = 1 << (win - 1).bit_length()  # next power of two: the window is zero-padded
    return torchaudio.transforms.MFCC(
        sample_rate=cfg.sample_rate, n_mfcc=cfg.n_mfcc,
        melkwargs={"n_fft": n_fft, "win_length": win, "hop_length": _samples(cfg, cfg.hop_ms),
                   "n_mels": cfg.n_mels, "center": True})


def frame_count(n_samples: int, cfg: FeatureConfig) -> int:
    """Frames a centred STFT yields: one per hop, plus one."""
    return n_samples // _samples(cfg, cfg.hop_ms) + 1


def mfcc(samples: torch.Tensor, transform: torchaudio.transforms.MFCC) -> torch.Tensor:
    """(frames, n_mfcc) float32 features of int16 samples scaled to [-1, 1)."""
    wave = samples.to(torch.float32) / 32768.0
    return transform(wave).transpose(0, 1).contiguous()  # (n_mfcc, F) -> (F, n_mfcc)


def normalize(feats: list[torch.Tensor], mode: Normalization, stats=None):
    """Normalized copies and the (mean, std) used (global mode: train stats, reused for test)."""
    if mode is Normalization.NONE:
        return feats, None
    if mode is Normalization.UTTERANCE:
        return [(f - f.mean(0)) / (f.std(0) + 1e-5) for f in feats], None
    if stats is None:
        stacked = torch.cat(feats)
        stats = (stacked.mean(0), stacked.std(0) + 1e-5)
    mean, std = stats
    return [(f - mean) / std for f in feats], stats
