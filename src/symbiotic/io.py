"""Writing outputs so that an interrupted stage never leaves a half-written file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)  # readers see the old file or the new one, never a partial one


def save_tensors(obj, path: Path) -> None:
    """torch.save a dict of tensors and plain values (loadable with weights_only=True)."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def read_tensors(path: Path, what: str, fix: str):
    """``load_tensors`` for a stage's input: a missing or damaged file (or one holding pickled
    code, which ``weights_only`` refuses) is a one-line UserError naming it as ``what``."""
    from symbiotic.errors import UserError

    if not Path(path).is_file():
        raise UserError(f"{what} {path} not found", fix)
    try:
        return load_tensors(path)
    except Exception as exc:  # torch raises many types for a damaged file
        raise UserError(f"{what} {path} is unreadable ({exc.__class__.__name__})", fix) from None


def save_json(obj, path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def save_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


def save_csv(frame, path: Path) -> None:
    _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically and close it."""
    path = Path(path)
    # matplotlib picks the format from the suffix, so the temporary name keeps it.
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    import matplotlib.pyplot as plt

    plt.close(fig)


def sha256_file(path: Path) -> str:
    """Hex SHA256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
