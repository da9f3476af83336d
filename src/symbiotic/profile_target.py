"""Measure the latency profile of a deployment target, alone: no DVC, no datasets, only this
package, torch and a params.yaml (for the widths and grids to sweep).

    python -m symbiotic.profile_target ptb an4 --out target-profile [--params params.yaml] [--device cpu]

writes target-profile/<task>/ (lhp.json, device.json with the machine's fingerprint, latency.csv,
sparse.csv, lhe.png). Bring the folder to the training machine and set
``profile.imported: target-profile`` in params.yaml: the profile stage then checks and uses it
instead of measuring there, and the metrics and report name the machine that measured it.
"""

from __future__ import annotations

from pathlib import Path

from symbiotic.cli import parser, run
from symbiotic.config import build, load_params, section
from symbiotic.errors import UserError
from symbiotic.hardware.measure import resolve_device
from symbiotic.hardware.profile import ProfileConfig, TaskShape, profile_task
from symbiotic.hardware.report import import_profile, profile_use
from symbiotic.tasks import TASKS, task_module


def measure(task: str, params: dict, device_name: str, out: Path, metrics: Path) -> dict:
    """Profile ``task`` on this machine with ``params``' settings into ``out``; its summary metrics."""
    cfg = build(ProfileConfig, section(params, "profile.measure"), "profile.measure")
    shape = build(TaskShape, section(params, f"profile.{task}"), f"profile.{task}")
    target = task_module(task).latency_target(params)
    return profile_task(task, device_name, cfg, shape, target, out, metrics)


def measure_or_import(task: str, params: dict, out: Path, metrics: Path) -> dict:
    """The profile stage's work: the imported target's profile where ``profile.imported`` names
    one (checked and copied), else a measurement here. Metrics say which machine measured it."""
    from symbiotic import io

    use = profile_use(params)
    if use.imported is None:
        return measure(task, params, params.get("device"), out, metrics)
    resolve_device(params.get("device"))  # an unknown device name is refused before the folder is read
    doc = import_profile(Path(use.imported), out, task=task, device_name=params.get("device"),
                         accept_foreign=use.accept_foreign)
    result = {"imported_from": str(use.imported), "measured_on": doc.get("fingerprint"),
              "threads": doc.get("threads"), **{f"crossover_{k}": v for k, v in doc["sparse_crossover"].items()},
              **{f"{k}_lhps": len(s["lhps"]) for k, s in doc["dimensions"].items()}}
    io.save_json(result, metrics)
    return result


def main(argv=None):
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("tasks", nargs="+", help=f"tasks to profile ({', '.join(TASKS)})")
    p.add_argument("--out", type=Path, required=True, help="folder to write <task>/ profiles into")
    p.add_argument("--device", default=None, help="cpu or cuda (default: params.yaml's device)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    device = args.device or params.get("device")
    for task in args.tasks:
        if task not in TASKS:
            raise UserError(f"unknown task {task!r}", f"use one of: {', '.join(TASKS)}")
    for task in args.tasks:
        result = measure(task, params, device, args.out / task, args.out / task / "profile_metrics.json")
        print(f"profile {task} on {device}: " + ", ".join(f"{k}={v}" for k, v in sorted(result.items())))
    print(f"bring {args.out} to the training machine and set profile.imported: {args.out} in params.yaml")


if __name__ == "__main__":
    run(main)
