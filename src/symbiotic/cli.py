"""What every stage entry point shares: argument parsing basics and error reporting."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from symbiotic.errors import UserError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Call ``main``; a UserError becomes one line on stderr and exit status 2, Ctrl-C one line and
    130 (the shell's status for SIGINT): stages save their progress after every epoch or
    iteration, so the same command resumes."""
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted — run the same command again to resume from the last saved epoch",
              file=sys.stderr)
        sys.exit(130)
