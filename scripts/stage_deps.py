"""Rewrite dvc.yaml's code deps from each stage's import closure (tests/unit/test_stage_deps.py).

    python scripts/stage_deps.py

Run it after adding an import to a stage's code; the test fails until then. Per-task modules go
to the foreach items' slots (task, base, model, ...); a task that has fewer repeats its task module.
Header comments of dvc.yaml are kept; the rest is rewritten by yaml.safe_dump.
"""
import re
import sys
from pathlib import Path
import yaml
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests/unit")]
from test_stage_deps import closure

SLOTS = [("task", r"tasks/"), ("base", r"tasks/"), ("model", r"models/"), ("batches", r"data/\w+_batches\.py"), ("metric", r"metrics/"),
         ("export", r"runtime/"), ("reader", r"data/an4\.py"), ("features", r"data/features\.py"),
         ("sphere", r"data/sphere\.py")]

def rel(p): return str(p.relative_to(ROOT))

def slot_of(path, task):
    # The task's own module is "task"; a task module it builds on (ptb_char on ptb) is "base".
    if path.endswith(f"tasks/{task}.py"): return "task"
    for name, pat in SLOTS:
        if name != "task" and re.search(pat, path): return name
    raise SystemExit(f"no slot for {path}")

text = (ROOT / "dvc.yaml").read_text()
header = "".join(l for l in text.splitlines(True) if l.startswith("#"))
doc = yaml.safe_load(text)
for name, stage in doc["stages"].items():
    body = stage["do"] if "foreach" in stage else stage
    script = re.search(r"python (stages/\S+\.py)", body["cmd"]).group(1)
    other = [d for d in body["deps"] if not (isinstance(d, str) and (d.startswith("src/") or d.startswith("${item.") or d == script))]
    if "foreach" not in stage:
        task = name.split("_", 1)[1]
        code = sorted(rel(p) for p in closure(ROOT / script, task) if rel(p) != script)
        body["deps"] = [script] + other + code
        continue
    per = {t: {rel(p) for p in closure(ROOT / script, t)} - {script} for t in stage["foreach"]}
    common = set.intersection(*per.values())
    if isinstance(stage["foreach"], list):  # a generic stage (report): no per-task modules, no slots
        assert all(per[t] == common for t in per), (name, per)
        body["deps"] = [script] + other + sorted(common)
        continue
    for t, item in stage["foreach"].items():
        spec = sorted(per[t] - common)
        slots = {}
        for p in spec:
            s = slot_of(p, t)
            assert s not in slots, (name, t, s, p, slots)
            slots[s] = p
        fill = slots["task"]
        stage["foreach"][t] = {s: slots.get(s, fill) for s, _ in SLOTS}
    helpers = sorted(p for p in common if p.startswith("stages/"))
    other = [d for d in other if d not in helpers]
    body["deps"] = [script] + helpers + other + sorted(p for p in common if not p.startswith("stages/")) + \
        [f"${{item.{s}}}" for s, _ in SLOTS]
(ROOT / "dvc.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
