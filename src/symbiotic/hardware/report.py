"""A latency profile's files: tables, the LHP summary and the paper's Fig. 2-style plot,
written by the profile stage and read back by the steps that use them.

:func:`load_profile` is the one way a stage reads a profile back. A profile holds only for the
task and the machine it was measured on, and DVC does not record which machine ran a stage, so a
cached profile reaches other machines silently; the loader therefore checks, before any work,
the files' structure (what the consumers read), the task, and the fingerprint
(:func:`symbiotic.hardware.measure.fingerprint`) against this machine's. A broken profile or
another task's is always refused; another machine's is refused unless ``profile.accept_foreign``
is true, and then used with a warning and recorded (``Profile.mismatch``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from symbiotic import io
from symbiotic.config import build, ranged, section
from symbiotic.errors import UserError
from symbiotic.hardware.measure import DEVICES, fingerprint
from symbiotic.runtime.formats import MATRICES, OUTPUT


def latency_table(rows: list[dict], summary: dict) -> pd.DataFrame:
    """One row per (dimension, size): median over passes, spread, per-pass medians, LHP flag."""
    frame = pd.DataFrame(rows)
    table = (frame.groupby(["dimension", "size"])
             .agg(median_s=("median_s", "median"), iqr_s=("iqr_s", "median"),
                  pass_min_s=("median_s", "min"), pass_max_s=("median_s", "max"),
                  passes=("pass", "nunique"), runs=("n", "sum"), threads=("threads", "first"))
             .reset_index())
    table["pass_spread"] = (table["pass_max_s"] - table["pass_min_s"]) / table["median_s"]
    table["is_lhp"] = [int(s) in set(summary[d]["lhps"]) for d, s in zip(table["dimension"], table["size"])]
    table["pass_agreement"] = table["dimension"].map({d: summary[d]["agreement"] for d in summary})
    table["split_half_agreement"] = table["dimension"].map(
        {d: summary[d]["split_half_agreement"] for d in summary})
    return table


def plot_profile(table: pd.DataFrame, sparse: pd.DataFrame, title: str, path: Path) -> None:
    """Latency against each dimension with LHPs marked, plus CSR/dense speed-up per sparsity."""
    import matplotlib  # here, not at the top: the stages that only read a profile start faster

    matplotlib.use("Agg")  # files only; no display on build machines
    import matplotlib.pyplot as plt
    dims = list(dict.fromkeys(table["dimension"]))
    fig, axes = plt.subplots(1, len(dims) + 1, figsize=(5 * (len(dims) + 1), 4))
    for ax, name in zip(axes, dims):
        part = table[table["dimension"] == name]
        ms = part["median_s"] * 1e3
        ax.fill_between(part["size"], part["pass_min_s"] * 1e3, part["pass_max_s"] * 1e3,
                        color="tab:blue", alpha=0.2, label="range over passes")
        ax.plot(part["size"], ms, color="tab:blue", lw=1, label="median")
        lhps = part[part["is_lhp"]]
        ax.scatter(lhps["size"], lhps["median_s"] * 1e3, color="tab:red", s=12, zorder=3, label="LHP")
        ax.set_xlabel(f"{name} width")
        ax.set_ylabel("latency per batch (ms)")
        ax.set_title(f"{name}: {int(part['is_lhp'].sum())} LHPs of {len(part)} points")
        ax.legend(fontsize=7)
    ax = axes[-1]
    for product, part in sparse.groupby("product"):
        ax.plot(part["sparsity"] * 100, part["speedup"], marker="o", label=product)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("dense time / CSR time")
    ax.set_title("CSR vs dense gate products")
    ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    io.save_figure(fig, path)


def write_profile(out: Path, rows, summary, sparse_rows, crossover, fingerprint, meta) -> dict:
    """All profile outputs into ``out``; returns the small lhp.json document."""
    table = latency_table(rows, summary)
    sparse = pd.DataFrame(sparse_rows)
    io.save_csv(table, out / "latency.csv")
    io.save_csv(pd.DataFrame(rows), out / "latency_raw.csv")
    io.save_csv(sparse, out / "sparse.csv")
    io.save_json(fingerprint, out / "device.json")
    doc = {**meta, "dimensions": {d: {k: v for k, v in s.items() if k != "median_latency_s"}
                                  for d, s in summary.items()},
           "sparse_crossover": crossover}
    io.save_json(doc, out / "lhp.json")
    title = f"{meta['task']} on {fingerprint.get('gpu_name') or fingerprint.get('cpu_model')} " \
            f"({meta['threads']} threads)"
    plot_profile(table, sparse, title, out / "lhe.png")
    return doc


# ---- reading a profile back, checked ------------------------------------------------------

# The fingerprint fields that change latency, per device kind, compared after the kind itself.
# hostname, platform and python_version are not: identical machines must match.
COMPARED = {"cpu": ("cpu_model", "logical_cores", "threads", "torch_version", "mkl_version", "mkldnn_version"),
            "cuda": ("gpu_name", "cuda_version", "cudnn_version", "torch_version", "threads")}
LATENCY_COLUMNS = ("dimension", "size", "median_s", "is_lhp")  # what flow/grow_lhp.lhp_targets reads
_ABSENT = "(absent)"


@dataclass(frozen=True)
class ProfileUse:
    """How the stages that read a profile use it (``profile.accept_foreign``, ``profile.imported``)."""

    accept_foreign: bool = ranged(False)  # use another machine's profile (with a warning) instead of refusing
    imported: str | None = None  # a folder measured on the deployment target (python -m symbiotic.profile_target)


def profile_use(params: dict) -> ProfileUse:
    """``profile.accept_foreign`` and ``profile.imported`` of ``params``, checked (UserError)."""
    values = section(params, "profile")
    return build(ProfileUse, {k: values[k] for k in ("accept_foreign", "imported") if k in values}, "profile")


def accept_foreign(params: dict) -> bool:
    """Whether a profile whose fingerprint is not this machine's may be used: asked for with
    ``profile.accept_foreign``, or implied by ``profile.imported`` (measured elsewhere on purpose)."""
    use = profile_use(params)
    return use.accept_foreign or use.imported is not None


@dataclass(frozen=True)
class Profile:
    """A checked profile: the LHP summary (lhp.json), the latency table (latency.csv), the
    fingerprint it was measured with (device.json) and, where ``accept_foreign`` let another
    machine's profile through, the first difference ("<field>: <profile's> != <this machine's>")."""

    doc: dict
    latency: pd.DataFrame
    device: dict
    mismatch: str | None = None


def load_profile(folder: Path, *, task: str, device, threads: int, accept_foreign: bool = False) -> Profile:
    """The profile in ``folder``, checked for ``task`` on this machine (``device``, a torch
    device, and the ``threads`` the stage times with); a UserError otherwise (module docstring).
    An accepted mismatch prints one ``warning:`` line on stderr."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"there is no profile folder {folder}",
                        f"run the profile stage first (dvc repro profile@{task}) or pass its folder with --profile")
    doc = _read_json(folder, "lhp.json", task)
    _check_task(folder, doc, task)
    fp = _read_json(folder, "device.json", task)
    latency = _read_latency(folder, task)
    check_structure(folder, doc, latency, fp, task)
    diff = first_difference(fp, fingerprint(device, threads))
    if diff is None:
        return Profile(doc, latency, fp)
    field, theirs, ours = diff
    if not accept_foreign:
        redo = (f"re-profile with the threads this stage uses (profile.measure.threads: null or {ours}; "
                f"dvc repro -f profile@{task})" if field == "threads"
                else f"re-profile on this machine (dvc repro -f profile@{task})")
        raise UserError(f"the profile in {folder} was measured on another machine: {field} is {theirs!r} "
                        f"there, {ours!r} here", f"{redo}, or set profile.accept_foreign: true to use it knowingly")
    note = " ".join(f"{field}: {theirs} != {ours}".split())  # one line, for stderr and the metrics
    print(f"warning: the profile in {folder} was measured on another machine ({note}); used because "
          f"profile.accept_foreign is true or profile.imported names it, so its latencies may not hold "
          f"here", file=sys.stderr)
    return Profile(doc, latency, fp, note)


# What an imported profile folder holds (written by write_profile); latency_raw.csv is optional.
PROFILE_FILES = ("lhp.json", "device.json", "latency.csv", "sparse.csv", "lhe.png")


def import_profile(source: Path, out: Path, *, task: str, device_name: str, accept_foreign: bool) -> dict:
    """The profile of ``task`` measured on the deployment target into ``source`` (its ``<task>/``
    subfolder, as ``python -m symbiotic.profile_target`` writes it, or the folder itself),
    checked and copied into ``out``. It must have been measured on the device kind the params
    name, unless ``accept_foreign``. Returns its lhp.json document."""
    import shutil

    source = Path(source)
    folder = source / task if (source / task).is_dir() else source
    if not (folder / "lhp.json").is_file():
        raise UserError(f"profile.imported is {source}, which holds no {task} profile (no lhp.json in {folder})",
                        f"on the target run `python -m symbiotic.profile_target {task} --out {source.name}` "
                        "and bring that folder here, or set profile.imported: null to profile this machine")
    doc = _read_json(folder, "lhp.json", task)
    _check_task(folder, doc, task)
    fp = _read_json(folder, "device.json", task)
    check_structure(folder, doc, _read_latency(folder, task), fp, task)
    if fp.get("device") != device_name and not accept_foreign:
        raise UserError(f"the profile in {folder} was measured on device {fp.get('device')!r} "
                        f"({doc.get('fingerprint')}), but params.yaml names device {device_name!r}",
                        f"re-profile on the target with `python -m symbiotic.profile_target {task} "
                        f"--device {device_name} --out {source.name}`, or set profile.accept_foreign: true "
                        "to use it knowingly")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*PROFILE_FILES, "latency_raw.csv"):
        if (folder / name).is_file():
            tmp = out / f".{name}.tmp"  # copied aside and renamed: an interrupted copy leaves no half file
            shutil.copyfile(folder / name, tmp)
            tmp.replace(out / name)
        elif name != "latency_raw.csv":
            raise _broken(folder, f"{name} is missing", task)
    return doc


def measured_on(folder: Path, task: str) -> str:
    """The fingerprint key of the machine that measured the profile in ``folder`` (lhp.json)."""
    doc = _read_json(Path(folder), "lhp.json", task)
    _check_task(Path(folder), doc, task)
    return str(doc.get("fingerprint"))


def first_difference(profile_fp: dict, here: dict) -> tuple[str, object, object] | None:
    """The first fingerprint field that differs, as (field, the profile's value, this machine's):
    the device kind first, then that kind's :data:`COMPARED` fields; None where all agree."""
    for field in ("device", *COMPARED.get(here.get("device"), ())):
        theirs, ours = profile_fp.get(field, _ABSENT), here.get(field, _ABSENT)
        if theirs != ours:
            return field, theirs, ours
    return None


def _broken(folder: Path, problem: str, task: str) -> UserError:
    return UserError(f"the profile in {folder} is unusable: {problem}",
                     f"re-profile (dvc repro -f profile@{task}); a broken profile is never used")


def _read_json(folder: Path, name: str, task: str):
    path = folder / name
    if not path.is_file():
        raise _broken(folder, f"{name} is missing", task)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise _broken(folder, f"{name} is not valid JSON ({exc.msg}, line {exc.lineno})", task) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _broken(folder, f"{name} is unreadable ({exc.__class__.__name__})", task) from None


def _read_latency(folder: Path, task: str) -> pd.DataFrame:
    path = folder / "latency.csv"
    if not path.is_file():
        raise _broken(folder, "latency.csv is missing", task)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise _broken(folder, "latency.csv is empty", task) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _broken(folder, f"latency.csv is unreadable ({exc.__class__.__name__})", task) from None


def _kind(value) -> str:
    if isinstance(value, dict):
        return "an empty mapping" if not value else "a mapping"
    return {list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_task(folder: Path, doc, task: str) -> None:
    """lhp.json is a mapping that names this task (checked first: another task's profile is
    otherwise well formed, and says so plainly)."""
    if not isinstance(doc, dict):
        raise _broken(folder, f"lhp.json holds {_kind(doc)}, not the LHP summary (a mapping)", task)
    theirs = doc.get("task", _ABSENT)
    if theirs == _ABSENT:
        raise _broken(folder, "lhp.json lacks 'task'", task)
    if theirs != task:
        raise UserError(f"the profile in {folder} was made for task {_short(theirs)} (lhp.json 'task'), not {task!r}",
                        f"pass the {task} profile (--profile profiles/{task}, made by dvc repro profile@{task})")


def _is_int(value, lo: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


def _is_fraction(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value) and 0.0 <= value <= 1.0)


def check_structure(folder: Path, doc: dict, latency: pd.DataFrame, fp, task: str) -> None:
    """What the consumers read (flow/grow_lhp.py, flow/prune_weights.py, runtime/formats.py) is
    there and of the right kind, and lhp.json agrees with device.json; else a UserError."""
    from symbiotic.tasks import task_class  # the task's own dimensions (imported by name)

    def bad(problem: str):
        raise _broken(folder, problem, task)

    for key, ok, what in (("device", lambda v: v in DEVICES, f"one of {', '.join(DEVICES)}"),
                          ("threads", _is_int, "a positive integer"), ("batch", _is_int, "a positive integer"),
                          ("seq_len", _is_int, "a positive integer"),
                          ("sparse_crossover", lambda v: isinstance(v, dict), "a mapping"),
                          ("dimensions", lambda v: isinstance(v, dict) and v, "a mapping of dimensions")):
        if key not in doc:
            bad(f"lhp.json lacks '{key}'")
        if not ok(doc[key]):
            bad(f"lhp.json '{key}' is {_short(doc[key])}, not {what}")
    crossover = doc["sparse_crossover"]
    for product in (*MATRICES, OUTPUT):
        if product not in crossover and product != OUTPUT:  # the decoder's is optional (dense without)
            bad(f"lhp.json 'sparse_crossover' lacks '{product}'")
        if not _is_fraction(crossover.get(product)):
            bad(f"lhp.json 'sparse_crossover.{product}' is {_short(crossover[product])}, "
                "not a sparsity in [0, 1] or null")
    dims = doc["dimensions"]
    for name in task_class(task).profile_dims:
        if name not in dims:
            bad(f"lhp.json 'dimensions' lacks '{name}', which {task} prunes")
    for name, summary in dims.items():
        if not isinstance(summary, dict):
            bad(f"lhp.json 'dimensions.{name}' is {_short(summary)}, not a mapping")
        for key in ("dims", "lhps"):
            values = summary.get(key)
            if not isinstance(values, list) or not all(_is_int(v) for v in values):
                bad(f"lhp.json 'dimensions.{name}.{key}' is {_short(values)}, not a list of widths")
    missing = [c for c in LATENCY_COLUMNS if c not in latency.columns]
    if missing:
        bad(f"latency.csv lacks the column(s) {', '.join(missing)}")
    if latency.empty:
        bad("latency.csv has no rows")
    if not pd.api.types.is_integer_dtype(latency["size"]):
        bad("latency.csv 'size' holds values that are not integer widths")
    if not pd.api.types.is_numeric_dtype(latency["median_s"]) or latency["median_s"].isna().any():
        bad("latency.csv 'median_s' holds values that are not numbers")
    if not (pd.api.types.is_bool_dtype(latency["is_lhp"]) or set(latency["is_lhp"].unique()) <= {0, 1}):
        bad("latency.csv 'is_lhp' holds values that are not True/False")
    for name in task_class(task).profile_dims:
        if not (latency["dimension"] == name).any():
            bad(f"latency.csv has no rows for dimension '{name}', which {task} prunes")
    if not isinstance(fp, dict):
        bad(f"device.json holds {_kind(fp)}, not a machine fingerprint (a mapping)")
    for key in ("device", "threads"):  # lhp.json's copy of what device.json records
        if fp.get(key, _ABSENT) != doc[key]:
            bad(f"lhp.json says {key} {doc[key]!r} but device.json says {fp.get(key, _ABSENT)!r}")
