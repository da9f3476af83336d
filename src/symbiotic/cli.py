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
    """Call ``main``; a UserError becomes one line on stderr and exit status 2."""
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
