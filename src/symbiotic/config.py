"""Typed, validated configs built from params.yaml sections.

Each stage reads one section into a frozen dataclass with :func:`build`. A
misspelt key, a missing key, a value of the wrong type or out of its range
fails at once with a one-line :class:`UserError` naming the key and the fix,
before any work starts. Ranges live beside the fields as metadata, so the
dataclass is the single description of what a section may hold.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path

import yaml

from symbiotic.errors import UserError


def ranged(default=dataclasses.MISSING, *, lo=None, hi=None, choices=None):
    """A dataclass field with an inclusive range [lo, hi] or a closed set of choices."""
    meta = {"lo": lo, "hi": hi, "choices": choices}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def load_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict; a missing or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file {path} not found", "run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"params file {path} is not valid YAML ({exc.__class__.__name__})",
                        "fix its syntax") from None
    if not isinstance(params, dict):
        raise UserError(f"params file {path} must hold a mapping of sections", "fix its top level")
    return params


def section(params: dict, dotted: str) -> dict:
    """The sub-dict at a dotted path such as ``prepare.ptb``; absent is a UserError."""
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"params.yaml has no section '{dotted}'", f"add '{dotted}' (see README)")
        node = node[part]
    if not isinstance(node, dict):
        raise UserError(f"params.yaml '{dotted}' must be a mapping", f"make '{dotted}' a section of keys")
    return node


T = typing.TypeVar("T")


def build(cls: type[T], values: dict, where: str) -> T:
    """Build ``cls`` from ``values``; every problem is a UserError naming ``where.key``."""
    if not isinstance(values, dict):
        raise UserError(f"params.yaml '{where}' is {values!r}, not a section of keys",
                        f"give '{where}' its keys (see README)")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"unknown key '{where}.{unknown[0]}' in params.yaml",
                        f"remove it or use one of: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"params.yaml lacks '{key}'", f"add '{key}' (see README)")
            continue
        kwargs[name] = _check(values[name], hints[name], f.metadata, key)
    return cls(**kwargs)


def _check(value, hint, meta, key):
    value = _coerce(value, hint, key)
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise UserError(f"'{key}' is {value!r}", f"use one of: {', '.join(map(str, choices))}")
    items = value if isinstance(value, (list, tuple)) else [value]
    lo, hi = meta.get("lo"), meta.get("hi")
    for item in items:
        if item is None or isinstance(item, (str, bool)):
            continue
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            raise UserError(f"'{key}' is {value!r}, out of range", f"set it within {bounds}")
    return value


def _coerce(value, hint, key):
    """Check ``value`` against a simple type hint; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except UserError as exc:
                errors.append(exc)
        raise errors[0]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"'{key}' is {value!r}", "give a list")
        (arg, *_) = typing.get_args(hint) or (object,)
        return tuple(_coerce(v, arg, key) for v in value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise UserError(f"'{key}' is {value!r}",
                            f"use one of: {', '.join(m.value for m in hint)}") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is object or (isinstance(hint, type) and isinstance(value, hint)
                          and not (hint is int and isinstance(value, bool))):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise UserError(f"'{key}' is {value!r} ({type(value).__name__})", f"give a {name}")
