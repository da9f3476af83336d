"""A throwaway copy of the repository in which `dvc repro` can run for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, TINY_PARAMS, merge


class Repo:
    def __init__(self, path: Path, data: Path):
        self.path = path
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ["PATH"],
                    "SYMBIOTIC_DATA": str(data), "CI": "1"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def set_params(self, updates: dict) -> None:
        """Deep-merge ``updates`` into the copy's params.yaml."""
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        merge(params, updates)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def stale(self) -> set[str]:
        """Names of the stages `dvc status` reports as changed."""
        import json

        out = self.dvc("status", "--json").stdout
        return set(json.loads(out or "{}"))


@pytest.fixture
def repo(tmp_path, real_data) -> Repo:
    """The working tree (tracked and untracked, not ignored) copied and committed anew."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    target = tmp_path / "repo"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    copy = Repo(target, real_data)
    copy.set_params(TINY_PARAMS)
    copy.run("git", "init", "-q")
    copy.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    copy.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    return copy
