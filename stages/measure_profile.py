"""profile stage: measure the target device's latency profile for a task (LHPs, dense vs sparse),
or check and use one measured on the deployment target (profile.imported).

Named measure_profile.py, not profile.py: stages/ is first on sys.path when a stage runs, and
a profile.py there would shadow the standard library module that cProfile (and torch) import.
"""

from pathlib import Path

from symbiotic.cli import parser, run
from symbiotic.config import load_params
from symbiotic.profile_target import measure_or_import


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("task", help="a task of symbiotic.tasks.TASKS (ptb, an4, ptb_char)")
    p.add_argument("--out", type=Path, required=True, help="folder for the profile outputs")
    p.add_argument("--metrics", type=Path, required=True, help="summary metrics JSON")
    args = p.parse_args(argv)
    result = measure_or_import(args.task, load_params(args.params), args.out, args.metrics)
    print(f"profile {args.task}: " + ", ".join(f"{k}={v}" for k, v in sorted(result.items())))


if __name__ == "__main__":
    run(main)
