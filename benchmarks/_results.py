"""How every benchmark reports: its result as indented JSON on stdout and, with --out, in a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result, indent=2, default=str)  # default=str: configs and paths as text
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
