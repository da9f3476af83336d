"""The fault-injection suite's one harness: run a stage as a user would, then check the
error contract (exit status 2, exactly one line on stderr that starts with ``error:`` and
names the problem, no traceback) and that no output that existed before was touched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, tiny_params_file


def run_stage(cwd: Path, name: str, *args: str, params: Path | None = None,
              extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python stages/<name>.py ARGS --params P`` in ``cwd`` (P: tiny params with ``extra``)."""
    params = params or tiny_params_file(cwd, extra)
    cmd = [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args, "--params", str(params)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def training_args(task: str, name: str, data: str = "data") -> list[str]:
    """The paths every training stage takes, under models/, metrics/ and plots/ of cwd."""
    return [task, "--data", data, "--model", f"models/{name}.pt", "--metrics", f"metrics/{name}.json",
            "--history", f"plots/{name}.csv"]


def timed(key: str) -> bool:
    """Metric keys that a run's timings decide, so two runs of the same training may differ in
    them: the export's latencies and speedups, and which widths ship (when thinning moved a width,
    the faster of two exports timed side by side: a near tie can go either way)."""
    return "_ms" in key or "speedup" in key or key in ("widths.shipped", "widths.reason")


def fingerprint(folder: Path) -> dict[str, str]:
    """SHA256 of every file under ``folder``; excluded: the resume folder (it may hold progress)
    and the params file that ``run_stage`` writes for each run."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        skip = ".resume" in path.parts or "__pycache__" in path.parts or path.name == "params.yaml"
        if path.is_file() and not skip:
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_refused(proc: subprocess.CompletedProcess, *fragments: str, status: int = 2) -> str:
    """The contract: exit ``status``, one stderr line ``error: ...`` holding each fragment
    (case-insensitive), and no traceback. Returns the line."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == status, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one 'error:' line, got:\n{proc.stderr}"
    line = errors[0]
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    assert " — " in line, f"no fix after the problem in {line!r}"
    return line


def assert_unchanged(before: dict[str, str], folder: Path, allow_new: tuple[str, ...] = ()) -> None:
    """Every file of ``before`` is still there, byte for byte; no new file but ``allow_new``."""
    after = fingerprint(folder)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"outputs changed by a refused run: {changed}"
    new = sorted(k for k in set(after) - set(before)
                 if not any(k.startswith(a) for a in allow_new))
    assert not new, f"a refused run wrote: {new}"
