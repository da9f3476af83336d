"""Build the native runtime now: ``python -m symbiotic.runtime.native`` (scripts/setup runs it)."""

from symbiotic.cli import run
from symbiotic.runtime.native import build_dir, load


def main(argv=None):
    module = load()
    print(f"native runtime: built in {build_dir()} ({module.__file__})")


if __name__ == "__main__":
    run(main)
