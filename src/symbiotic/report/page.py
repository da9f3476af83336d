"""One self-contained HTML page per task: every figure embedded as a data URI, every number read
from the flow's own outputs (metrics/, profiles/, plots/, models/), nothing fetched when opened.

Each number the page shows from a file carries ``data-source`` (the file's name) and
``data-key`` (the JSON key, or ``row:column`` of a CSV), so a test can check the page against
the metrics files."""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from symbiotic.errors import UserError
from symbiotic.report import figures
from symbiotic.report.headline import metric_of

# The steps in flow order, with their checkpoint and history names (final.pt is step (d)'s).
STEPS = (("baseline", "baseline", "baseline"), ("(a) weight growth", "grow", "grow"),
         ("(b) row/column pruning", "prune_rows", "prune_rows"), ("(c) growth to the LHP", "grow_lhp", "grow_lhp"),
         ("(d) weight pruning", "final", "prune_weights"))
MASK_OF = "mask_u_h"  # the gate matrix drawn after each step: the recurrent (h -> gate hidden) one

# The page's style and its one script: once the page has loaded, the script marks the body with
# how many images decoded and how many tables were laid out with a height (data-images="loaded
# N/M", data-tables="rendered N/M"), which a headless browser's DOM dump shows.
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 7px;font-size:13px}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:13px}"""
SCRIPT = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
document.body.setAttribute('data-images','loaded '+ok+'/'+im.length);
var tb=document.getElementsByTagName('table'),shown=0;for(var j=0;j<tb.length;j++){if(tb[j].offsetHeight>0)shown++;}
document.body.setAttribute('data-tables','rendered '+shown+'/'+tb.length);});"""


@dataclass(frozen=True)
class Inputs:
    """Where a task's outputs are (the report stage's deps)."""

    task: str
    metrics: Path   # metrics/<task>: summary.json, steps.csv, *_log.csv
    profile: Path   # profiles/<task>: lhp.json, device.json, lhe.png
    plots: Path     # plots/<task>: tradeoff.png, <step>_history.csv
    models: Path    # models/<task>: <step>.pt checkpoints


def number(value) -> str:
    """How the page writes a number: integers whole, other values to 4 significant digits; a
    missing value (NaN: a log's empty cell, e.g. an iteration that did not diverge) as blank."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1e4):
        return f"{int(value)}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(value, source: str, key: str) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    attrs = f' data-source="{source}" data-key="{html.escape(key)}"' + (' class="n"' if numeric else "")
    return f"<td{attrs}>{html.escape(number(value))}</td>"


def _plain(value) -> object:
    """A pandas scalar as a Python one (numpy ints would print as floats otherwise)."""
    return value.item() if hasattr(value, "item") else value


def table(frame: pd.DataFrame, source: str, caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in frame.iterrows():
        rows.append("<tr>" + "".join(_cell(_plain(row[c]), source, f"{i}:{c}") for c in frame.columns) + "</tr>")
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{''.join(rows)}</table>"


def key_table(values: dict, source: str, caption: str) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th>{_cell(v, source, k)}</tr>" for k, v in values.items())
    return f"<table><caption>{html.escape(caption)}</caption>{rows}</table>"


def image(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _need(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"the report needs {path}, which is missing",
                        "run the stages before the report (dvc repro), or pass the folders that hold their outputs")
    return path


def read_json(path: Path) -> dict:
    """A JSON input of the report, checked: missing or malformed is a one-line UserError."""
    try:
        return json.loads(_need(path).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg})", "rerun the stage that writes it (dvc repro)") from None


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(_need(path))


def profile_section(inp: Inputs) -> str:
    """The target's latency profile: the LHE plot, the LHPs per dimension, the dense/CSR
    crossovers and the fingerprint of the machine that measured it."""
    doc = read_json(inp.profile / "lhp.json")
    dims = {}
    for name, s in doc["dimensions"].items():
        dominated = sorted(set(s["dims"]) - set(s["lhps"]))
        dims[name] = {"points": len(s["dims"]), "LHPs": len(s["lhps"]), "redundancy": s["redundancy"],
                      "dominated widths": ", ".join(map(str, dominated)) or "none"}
    lhps = pd.DataFrame(dims).T.reset_index(names="dimension")
    cross = pd.DataFrame([{"product": k, "CSR faster from sparsity": "never" if v is None else v}
                          for k, v in doc["sparse_crossover"].items()], dtype=object)
    device = read_json(inp.profile / "device.json")
    return ("<h2>Latency profile of the target device</h2>"
            f"<p class=note>Measured with the {html.escape(str(doc.get('runtime')))} runtime at batch "
            f"{doc.get('batch')} x {doc.get('seq_len')} steps, {doc.get('passes')} interleaved passes; "
            "an LHP is a width no larger width beats in every pass.</p>"
            + image(_need(inp.profile / "lhe.png").read_bytes(), "latency profile (LHE plot)")
            + table(lhps, "lhp.json", "Latency hysteresis points per dimension")
            + table(cross, "lhp.json", "Dense/CSR crossovers: the sparsity from which CSR beats dense")
            + key_table(device, "device.json", f"Machine that measured the profile: {doc.get('fingerprint')}"))


def curves_section(inp: Inputs, metric: str) -> str:
    histories = {}
    for label, _, history in STEPS:
        frame = _csv(inp.plots / f"{history}_history.csv")
        if metric in frame:  # a step that trained no epoch (step (c) on the sparse path) has no curve
            histories[label] = frame
    return ("<h2>Training curves</h2><p class=note>Every epoch of every step, in flow order; the pruning "
            "steps' epochs are the retraining after each prune.</p>"
            + image(figures.curves(histories, metric), "training curves"))


def masks_section(inp: Inputs) -> str:
    """The paper's Fig. 6: one gate matrix's mask after each step of the H-LSTM."""
    from symbiotic.training import checkpoint  # torch: imported where the masks are read

    blocks, name = {}, None
    for label, ckpt_name, _ in STEPS[1:]:
        state = checkpoint.load(_need(inp.models / f"{ckpt_name}.pt"))["state_dict"]
        keys = sorted(k for k in state if k.endswith(MASK_OF))
        if not keys:
            raise UserError(f"{inp.models / ckpt_name}.pt has no {MASK_OF} mask",
                            "pass the H-LSTM checkpoints of the flow (models/<task>/)")
        name = name or keys[0]
        blocks[label] = figures.gate_block(state[name])
    return ("<h2>Masks after each step</h2><p class=note>The first gate's recurrent matrix "
            f"({html.escape(name)}): rows are that gate's hidden units, columns the hidden state.</p>"
            + image(figures.masks(blocks, name), f"masks of {name}"))


def page(inp: Inputs) -> str:
    summary = read_json(inp.metrics / "summary.json")
    metric = metric_of(summary)
    steps = _csv(inp.metrics / "steps.csv")
    logs = "".join(table(_csv(inp.metrics / f"{s}_log.csv"), f"{s}_log.csv", f"{s}: every iteration")
                   for s in ("prune_rows", "prune_weights") if (inp.metrics / f"{s}_log.csv").is_file())
    body = (f"<h1>symbiotic: {html.escape(inp.task)}</h1>"
            + key_table(summary, "summary.json", "Headline: final model against the stock LSTM baseline")
            + table(steps, "steps.csv", "Every step: size, accuracy and latency on the evaluating machine")
            + "<h2>Accuracy, latency and size</h2>"
            + image(_need(inp.plots / "tradeoff.png").read_bytes(), "accuracy-latency trade-off")
            + profile_section(inp) + curves_section(inp, metric) + masks_section(inp)
            + "<h2>Pruning logs</h2>" + logs)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>symbiotic {html.escape(inp.task)}</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}</body></html>")
