"""A latency profile's files: tables, the LHP summary and the paper's Fig. 2-style plot,
written by the profile stage and read back by the steps that use them."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on build machines
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from symbiotic import io  # noqa: E402
from symbiotic.errors import UserError  # noqa: E402


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


def load_profile(folder: Path) -> tuple[dict, pd.DataFrame]:
    """The LHP summary (lhp.json) and latency table (latency.csv) of a profile folder."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / "lhp.json").read_text())
        latency = pd.read_csv(folder / "latency.csv")
    except (OSError, ValueError) as exc:
        raise UserError(f"profile in {folder} is missing or unreadable ({exc.__class__.__name__})",
                        "run the profile stage for this task first (dvc repro)") from None
    return doc, latency
