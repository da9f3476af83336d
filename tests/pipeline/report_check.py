"""What the report test asserts of one task's page, opened in a real headless browser: every image
decoded, every table laid out, a screenshot that is not blank, and every number shown equal to
the file it came from (each cell names its file and key: report/page.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from browser import cells, rendered_dom, screenshot


def _lookups(root: Path, task: str) -> dict:
    """data-source name -> key -> the value in that file."""
    metrics, profile = root / "metrics" / task, root / "profiles" / task
    out = {"summary.json": json.loads((metrics / "summary.json").read_text()),
           "device.json": json.loads((profile / "device.json").read_text())}
    for name in ("steps.csv", "prune_rows_log.csv", "prune_weights_log.csv"):
        frame = pd.read_csv(metrics / name)
        out[name] = {f"{i}:{c}": frame.at[i, c] for i in frame.index for c in frame.columns}
    doc = json.loads((profile / "lhp.json").read_text())
    lhp = {}
    for i, (name, s) in enumerate(doc["dimensions"].items()):
        lhp.update({f"{i}:dimension": name, f"{i}:points": len(s["dims"]), f"{i}:LHPs": len(s["lhps"]),
                    f"{i}:redundancy": s["redundancy"]})
    for i, (product, point) in enumerate(doc["sparse_crossover"].items()):
        lhp.update({f"{i}:product": product, f"{i}:CSR faster from sparsity": "never" if point is None else point})
    out["lhp.json"] = lhp
    return out


def _same(shown: str, value) -> bool:
    """The page's text against the file's value: numbers to the 4 significant digits shown."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return shown == str(value)
    if isinstance(value, float) and math.isnan(value):
        return shown == ""  # a missing value is a blank cell
    return math.isclose(float(shown), value, rel_tol=5e-4, abs_tol=1e-12)


def check_report(root: Path, task: str, scratch: Path) -> int:
    """Asserts the page of ``task`` under ``root``/reports; returns how many numbers it checked."""
    page = root / "reports" / f"{task}.html"
    dom = rendered_dom(page, scratch / "chromium")
    found = cells(dom)
    assert len(found.images) >= 4 and all(i["src"].startswith("data:image/png;base64,") for i in found.images)
    assert found.body.get("data-images") == f"loaded {len(found.images)}/{len(found.images)}", found.body
    rendered, total = found.body["data-tables"].split()[1].split("/")
    assert rendered == total and int(total) >= 7, found.body
    lookups, checked = _lookups(root, task), 0
    for source, key, shown in found.cells:
        if source == "lhp.json" and key.split(":", 1)[1] == "dominated widths":
            continue  # a list of widths, checked below as the count of LHPs
        assert key in lookups[source], (source, key)
        assert _same(shown, lookups[source][key]), (task, source, key, shown, lookups[source][key])
        checked += 1
    summary = lookups["summary.json"]
    assert all(any(s == "summary.json" and k == key for s, k, _ in found.cells) for key in summary)
    shot = screenshot(page, scratch / "chromium", scratch / f"{task}.png")
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05, "the screenshot is blank"
    return checked
