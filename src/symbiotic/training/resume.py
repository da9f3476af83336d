"""Resuming an interrupted stage where it stopped.

A stage saves its loop state (model, optimizer, schedules, history, RNG) after
every round into ``<folder>/<stage>.pt``, outside the stage's DVC outputs so
that DVC does not delete it before a rerun. The file carries a key made of the
stage's params and the hashes of its inputs: a rerun with anything changed
starts afresh instead of resuming someone else's work. The file is removed when
the stage completes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from symbiotic import io
from symbiotic.training import distributed


file_digest = io.sha256_file


class Resume:
    def __init__(self, folder: Path | None, stage: str, params: dict, inputs: list[Path]):
        self.path = None if folder is None else Path(folder) / f"{stage}.pt"
        blob = json.dumps({"params": params, "inputs": [file_digest(p) for p in inputs]},
                          sort_keys=True, default=str)
        self.key = hashlib.sha256(blob.encode()).hexdigest()

    def load(self) -> dict | None:
        """The saved state if it belongs to this exact run, else None."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            saved = io.load_tensors(self.path)
        except Exception:  # a file cut short by the interruption itself: start afresh
            return None
        if saved.get("key") != self.key:
            return None
        world = distributed.current()
        rngs = saved.get("rngs", [saved["rng"]])  # each rank's dropout stream, where several saved
        torch.set_rng_state(rngs[world.rank] if len(rngs) == world.size else saved["rng"])
        return saved["state"]

    def save(self, state: dict) -> None:
        """Every rank hands its RNG state to rank 0, which alone writes the file."""
        rngs = distributed.current().gather(torch.get_rng_state())
        if self.path is not None and distributed.current().writer:
            io.save_tensors({"key": self.key, "rng": rngs[0], "rngs": rngs, "state": state}, self.path)

    def finish(self) -> None:
        if self.path is not None and distributed.current().writer:
            self.path.unlink(missing_ok=True)
