"""profile stage: measure the target device's latency profile for a task (LHPs, dense vs sparse).

Named measure_profile.py, not profile.py: stages/ is first on sys.path when a stage runs, and
a profile.py there would shadow the standard library module that cProfile (and torch) import.
"""

from pathlib import Path

from symbiotic.cli import parser, run
from symbiotic.config import build, load_params, section
from symbiotic.hardware.profile import ProfileConfig, TaskShape, profile_task
from symbiotic.tasks import task_module


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("task", help="ptb or an4")
    p.add_argument("--out", type=Path, required=True, help="folder for the profile outputs")
    p.add_argument("--metrics", type=Path, required=True, help="summary metrics JSON")
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = build(ProfileConfig, section(params, "profile.measure"), "profile.measure")
    shape = build(TaskShape, section(params, f"profile.{args.task}"), f"profile.{args.task}")
    target = task_module(args.task).latency_target(params)
    result = profile_task(args.task, params.get("device"), cfg, shape, target, args.out, args.metrics)
    print(f"profile {args.task}: " + ", ".join(f"{k}={v}" for k, v in sorted(result.items())))


if __name__ == "__main__":
    run(main)
