"""Presets: named sets of params overrides, turned into `dvc exp run -S` arguments.

    dvc exp run -n small $(python -m symbiotic.preset small)

prints one ``-S key=value`` per overridden key of ``presets/<name>.yaml``, so an
experiment records exactly which values the preset changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from symbiotic.errors import UserError

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def merge(base: dict, updates: dict) -> dict:
    """Deep-merge ``updates`` into ``base`` (in place) and return it: what `-S` does to params."""
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def applied(params: dict, name: str, folder: Path = PRESETS) -> dict:
    """``params`` with preset ``name`` laid over it (in place), as `dvc exp run` would run it."""
    return merge(params, _overrides(name, folder))


def _overrides(name: str, folder: Path) -> dict:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise UserError(f"unknown preset '{name}'", f"use one of: {known}")
    return yaml.safe_load(path.read_text()) or {}


def _text(value) -> str:
    """A value as `-S` takes it, without whitespace: `$(...)` splits the printed line on spaces and
    ignores quotes, so `[0.0, 0.7]` would reach dvc as two broken words (`[0.0,0.7]` is one)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def arguments(name: str, folder: Path = PRESETS) -> list[str]:
    overrides = flatten(_overrides(name, folder))
    args = []
    for key, value in overrides.items():
        text = _text(value)
        if any(c.isspace() for c in text):
            raise UserError(f"preset '{name}' sets {key} to {text!r}, which holds whitespace that "
                            "$(python -m symbiotic.preset ...) would split",
                            f"write that value without spaces in presets/{name}.yaml")
        args += ["-S", f"{key}={text}"]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m symbiotic.preset NAME", file=sys.stderr)
        sys.exit(2)
    try:
        print(" ".join(arguments(argv[0])))  # no quoting: $(...) would pass the quotes on
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
