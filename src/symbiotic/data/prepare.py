"""The prepare stage's work for each task: locate, verify, process, then write."""

from __future__ import annotations

from pathlib import Path

from symbiotic import io
from symbiotic.config import build, section
from symbiotic.data import fetch
from symbiotic.errors import UserError

TASKS = ("ptb", "an4")


def source_param(params: dict) -> str | None:
    source = section(params, "prepare").get("source")
    if source is not None and not isinstance(source, str):
        raise UserError(f"'prepare.source' is {source!r}", "give a folder path or null")
    return source


def prepare_task(task: str, params: dict, out: Path, metrics: Path, sums: Path,
                 downloads: Path) -> dict:
    """Prepare ``task`` into ``out`` and write its metrics JSON; returns the metrics."""
    if task not in TASKS:
        raise UserError(f"unknown task '{task}'", f"use one of: {', '.join(TASKS)}")
    where = f"prepare.{task}"
    values = section(params, where)
    source = source_param(params)  # validate params before any slow work
    # Each task's modules are imported only for that task, so that dvc.yaml can list
    # exactly the modules a stage runs and an edit to one task does not rerun the other.
    if task == "ptb":
        from symbiotic.data import ptb

        cfg = build(ptb.PTBPrepareConfig, values, where)
        folder = fetch.locate(task, source, downloads)
        fetch.verify(folder, fetch.read_sums(sums), [f"ptb.{s}.txt" for s in ptb.SPLITS])
        tokens, vocab, result = ptb.prepare(folder, cfg)
        for split, tensor in tokens.items():
            io.save_tensors(tensor, out / f"{split}.pt")
        io.save_text("\n".join(vocab) + "\n", out / "vocab.txt")
    else:
        from symbiotic.data import an4
        from symbiotic.data.features import FeatureConfig

        cfg = build(an4.AN4PrepareConfig, values, where)
        feat_cfg = build(FeatureConfig, cfg.features, f"{where}.features")
        folder = fetch.locate(task, source, downloads)
        fetch.verify(folder, fetch.read_sums(sums), _an4_files(folder))
        tensors, manifest, result = an4.prepare(folder, cfg, feat_cfg)
        for split, packed in tensors.items():
            io.save_tensors(packed, out / f"{split}.pt")
        io.save_csv(manifest, out / "manifest.csv")
        io.save_text("\n".join(an4.LABELS) + "\n", out / "labels.txt")
    io.save_json(result, metrics)
    return result


def _an4_files(folder: Path) -> list[str]:
    from symbiotic.data import an4

    etc = [f"etc/an4_{s}.{kind}" for s in ("train", "test") for kind in ("fileids", "transcription")]
    for name in etc:  # the listing files first: the audio list is read from them
        if not (folder / name).is_file():
            raise UserError(f"{folder / name} is missing from the data copy",
                            "restore the complete AN4 folder (see README, Data)")
    return etc + an4.audio_files(folder)
