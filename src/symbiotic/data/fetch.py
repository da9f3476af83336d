"""Find a task's source files: a local copy, or a download of the canonical archive.

A local copy is a folder laid out like ``<root>/ptb/ptb.train.txt`` and
``<root>/an4/wav/...`` (the mirror in ``../shared/data``). It is named by the
``prepare.source`` param or, when that is null, by the ``SYMBIOTIC_DATA``
environment variable. Without either, the canonical archive is downloaded once
into ``data/downloads/`` and the files the task needs are extracted there.
Either way every file the task reads is checked against the committed SHA256
sums before anything is written, so the prepared data depend only on the sums
file, which is what DVC tracks. Source files are only ever read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from symbiotic import io
from symbiotic.errors import UserError
from symbiotic.progress import bar

ENV_VAR = "SYMBIOTIC_DATA"


@dataclass(frozen=True)
class Archive:
    """Where a task's canonical archive lives and where its files sit inside it."""

    url: str
    prefix: str  # path inside the archive that corresponds to the task folder


ARCHIVES = {
    "ptb": Archive("https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
                   "simple-examples/data/"),
    "an4": Archive("https://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz", "an4/"),
}


def read_sums(path: Path) -> dict[str, str]:
    """Relative path → expected SHA256, from a ``sha256sum``-style file."""
    if not path.is_file():
        raise UserError(f"checksum file {path} not found", "restore it from git (data/checksums/)")
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*").strip()] = digest.lower()
    return sums


sha256 = io.sha256_file


def verify(folder: Path, sums: dict[str, str], names: list[str] | None = None) -> None:
    """Check each named file (default: all in ``sums``) exists in ``folder`` with its sum."""
    for name in bar(names if names is not None else sorted(sums), desc=f"verify {folder.name}"):
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} is missing from the data copy",
                            "restore the complete dataset folder (see README, Data)")
        got = sha256(path)
        if got != sums[name]:
            raise UserError(f"checksum mismatch for {path}: expected {sums[name]}, got {got}",
                            "the copy is damaged or a different version; replace it with the canonical file")


def locate(task: str, source: str | None, downloads: Path) -> Path:
    """The folder holding ``task``'s files: a local copy if one is named, else a download."""
    root = source or os.environ.get(ENV_VAR)
    if root:
        folder = Path(root).expanduser() / task
        if not folder.is_dir():
            raise UserError(f"data folder {folder} does not exist",
                            f"point {ENV_VAR} (or prepare.source) at a folder holding ptb/ and an4/, "
                            "or unset both to download")
        return folder
    return download(task, downloads)


def download(task: str, downloads: Path) -> Path:
    """Download and unpack ``task``'s archive under ``downloads`` unless already done."""
    archive = ARCHIVES[task]
    folder = downloads / task
    done = folder / ".complete"
    if done.exists():
        return folder
    downloads.mkdir(parents=True, exist_ok=True)
    tarball = downloads / Path(archive.url).name
    if not tarball.exists():
        _fetch(archive.url, tarball)
    _extract(tarball, archive.prefix, folder)
    done.touch()
    return folder


def _fetch(url: str, target: Path) -> None:
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"could not download {url} ({exc})",
                        f"connect to the internet or set {ENV_VAR} to a local copy of the data") from None
    partial.replace(target)  # only a complete download gets the final name


def _extract(tarball: Path, prefix: str, folder: Path) -> None:
    """Unpack the members under ``prefix`` into ``folder``, stripping the prefix."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(tarball) as tar:
            members = []
            for member in tar.getmembers():
                name = member.name.removeprefix("./")
                if name.startswith(prefix) and member.isfile():
                    member.name = name[len(prefix):]
                    members.append(member)
            tar.extractall(staging, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"archive {tarball} is unreadable ({exc})",
                        "delete it so that the next run downloads it again") from None
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
