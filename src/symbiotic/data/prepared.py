"""A prepared-data folder written as a whole, and read only when it is whole.

Each file is written atomically (``io``), but a folder is a set of files: an interrupted
prepare could leave new splits beside an old vocabulary. So prepare builds the folder aside
(``<out>.partial``), writes ``manifest.json`` last inside it (the task, every file's name, size
and SHA256, the format version), then swaps it into place: the old folder is renamed aside
(``<out>.old``), the new one renamed in, the old one deleted. A reader sees the old complete
folder or the new complete one; a folder without a manifest, or whose files differ from it,
is refused (``check``) before any training starts.

Nothing here knows a task: the task's preparation writes its files into the folder it is
given, and the task's loader names the files it needs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from symbiotic import io
from symbiotic.errors import UserError

MANIFEST = "manifest.json"
FORMAT = 1  # of the manifest; a reader refuses any other
PARTIAL = ".partial"  # suffix of the folder being built
OLD = ".old"  # suffix of the previous folder while the new one is renamed in

T = TypeVar("T")


def rerun(task: str) -> str:
    return f"rerun `dvc repro prepare_{task}`"


def _aside(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def describe(folder: Path, task: str) -> dict:
    """The manifest of ``folder`` as it is now: every file under it (but the manifest)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST:
            files[name] = {"size": path.stat().st_size, "sha256": io.sha256_file(path)}
    return {"format": FORMAT, "task": task, "files": files}


def write_manifest(folder: Path, task: str) -> dict:
    """Write ``folder``'s manifest (last: it marks the folder complete); returns it."""
    manifest = describe(folder, task)
    io.save_json(manifest, Path(folder) / MANIFEST)
    return manifest


def build(out: Path, task: str, write: Callable[[Path], T]) -> T:
    """``write(folder)`` into a fresh ``<out>.partial``, then the manifest, then the swap into
    ``out``; returns what ``write`` returned. On any failure the partial folder is removed and
    ``out`` is left as it was."""
    out = Path(out)
    _recover(out)
    partial = _aside(out, PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)  # what an earlier, killed prepare left
    partial.mkdir(parents=True)
    try:
        result = write(partial)
        write_manifest(partial, task)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _swap(partial, out)
    return result


def _recover(out: Path) -> None:
    """A prepare killed between the two renames of ``_swap`` left the previous complete folder
    aside and none in place: put it back; any other leftover aside folder is deleted."""
    old = _aside(out, OLD)
    if old.is_dir() and not out.exists() and (old / MANIFEST).is_file():
        os.replace(old, out)
    shutil.rmtree(old, ignore_errors=True)


def _swap(new: Path, out: Path) -> None:
    old = _aside(out, OLD)
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def check(folder: Path, task: str, needs: Iterable[str]) -> dict:
    """Refuse ``folder`` unless its manifest is there, is ``task``'s, lists every name of ``needs``
    and every listed file has its recorded size and SHA256; returns the manifest."""
    folder, fix = Path(folder), rerun(task)
    if not folder.is_dir():
        raise UserError(f"prepared data {folder} not found", f"run `dvc repro prepare_{task}` first")
    manifest = _read_manifest(folder, task)
    if manifest.get("task") != task:
        raise UserError(f"{folder / MANIFEST} is the manifest of task {manifest.get('task')!r}, "
                        f"not '{task}'", f"point --data at the {task} prepared folder, or {fix}")
    files = manifest["files"]
    missing = [name for name in needs if name not in files]
    if missing:
        raise UserError(f"{folder / MANIFEST} lists no {', '.join(missing)}", fix)
    for name, entry in files.items():
        _check_file(folder / name, entry, fix)
    return manifest


def _read_manifest(folder: Path, task: str) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder} has no {MANIFEST}: it is incomplete or was written by an "
                        f"interrupted prepare", rerun(task))
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({type(exc).__name__})", rerun(task)) from None
    ok = (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
          and all(isinstance(e, dict) and {"size", "sha256"} <= set(e) for e in manifest["files"].values()))
    if not ok:
        raise UserError(f"{path} is not a prepared-data manifest", rerun(task))
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path} has format {manifest.get('format')!r}, this code reads format {FORMAT}",
                        rerun(task))
    return manifest


def _check_file(path: Path, entry: dict, fix: str) -> None:
    if not path.is_file():
        raise UserError(f"{path} is listed in {MANIFEST} but missing", fix)
    size = path.stat().st_size
    if size != entry["size"]:
        raise UserError(f"{path} has {size} bytes, {MANIFEST} records {entry['size']}: it changed after "
                        f"prepare wrote it", fix)
    if io.sha256_file(path) != entry["sha256"]:
        raise UserError(f"{path} differs from its SHA256 in {MANIFEST}: it changed after prepare wrote it",
                        fix)
