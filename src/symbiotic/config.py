"""Typed, validated configs built from params.yaml sections.

Each stage reads one section into a frozen dataclass with :func:`build`. A
misspelt key, a missing key, a value of the wrong type or out of its range
fails at once with a one-line :class:`UserError` naming the key and the fix,
before any work starts. Ranges live beside the fields as metadata, so the
dataclass is the single description of what a section may hold. A key the
section lacks fails even where its field has a default (those defaults are for
code that builds configs itself): params.yaml names every value a result
depends on. NaN is no value of any float field, nor is +-inf unless the field's
range says so (``ranged(finite=False)``).

:func:`load_params` checks what no dataclass sees: a key written twice in the
file (YAML would keep the last silently), a top-level section that is not in
:data:`SECTIONS`, and a subsection of a per-task section that is no task.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from pathlib import Path

import yaml

from symbiotic.errors import UserError
from symbiotic.tasks import TASKS

# The one list of params.yaml's top-level sections, each with the keys it holds beside one
# subsection per task (symbiotic.tasks.TASKS); None: a plain value, no subsections. A new
# stage's section is added here.
SECTIONS: dict[str, tuple[str, ...] | None] = {
    "device": None,
    "prepare": ("source",),
    "model": (),
    "train": (),
    "baseline": (),
    "grow": (),
    "threshold": (),
    "prune_rows": (),
    "grow_lhp": (),
    "prune_weights": (),
    "evaluate": (),
    "profile": ("measure", "accept_foreign", "imported"),
}


def ranged(default=dataclasses.MISSING, *, lo=None, hi=None, choices=None, finite=True):
    """A dataclass field with an inclusive range [lo, hi] or a closed set of choices. A float
    field's values must be finite; ``finite=False`` admits +-inf (never NaN)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "finite": finite}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, second: int):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _Loader(yaml.SafeLoader):
    """safe_load that refuses a mapping key written twice, at any depth, before building values."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node, "", set())
        return self.construct_document(node)


def _refuse_duplicates(node: yaml.Node, where: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: checked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{where}[{i}]", seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            dotted = f"{where}.{name}" if where else str(name)
            if name is not None and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if (key_node.tag, name) in lines:
                    raise _DuplicateKey(dotted, lines[(key_node.tag, name)], line)
                lines[(key_node.tag, name)] = line
            _refuse_duplicates(value_node, dotted, seen)


def load_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict; a missing or malformed file, a key written twice and an
    unknown section or task are UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file {path} not found", "run from the repository root or pass --params")
    try:
        params = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader: plain data only
    except _DuplicateKey as dup:
        raise UserError(f"{path}: key '{dup.key}' is written twice (lines {dup.first} and {dup.second})",
                        "keep one of them") from None
    except UnicodeDecodeError:
        raise UserError(f"params file {path} is not UTF-8 text", "save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise UserError(f"params file {path} is not valid YAML ({_yaml_problem(exc)})", "fix its syntax") from None
    if not isinstance(params, dict):
        raise UserError(f"params file {path} must hold a mapping of sections", "fix its top level")
    _check_sections(params, path)
    return params


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the parser says and where, on one line: 'expected ..., line 4; while parsing ..., line 3'."""
    parts = []
    for text, mark in ((getattr(exc, "problem", None), getattr(exc, "problem_mark", None)),
                       (getattr(exc, "context", None), getattr(exc, "context_mark", None))):
        if text:
            parts.append(" ".join(str(text).split()) + (f", line {mark.line + 1}" if mark is not None else ""))
    return "; ".join(parts) or exc.__class__.__name__


def _check_sections(params: dict, path: Path) -> None:
    """Every top-level section is one of SECTIONS; a per-task section holds only tasks (and
    its own keys). A section that is no mapping (or null) is left to :func:`section`."""
    for name in params:
        if name not in SECTIONS:
            raise UserError(f"{path}: unknown section '{name}'",
                            f"remove it or use one of: {', '.join(SECTIONS)}")
        own = SECTIONS[name]
        if own is None or not isinstance(params[name], dict):
            continue
        allowed = (*own, *TASKS)
        for child in params[name]:
            if child not in allowed:
                kind = "task" if not own else "key"
                raise UserError(f"{path}: unknown {kind} '{name}.{child}'",
                                f"remove it or use one of: {', '.join(map(str, allowed))}")


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
        if name not in values:  # even with a default: the file names every value (module docstring)
            raise UserError(f"params.yaml lacks '{key}'", f"add '{key}' (see params.yaml in the repository)")
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
        if isinstance(item, float) and (math.isnan(item) or (math.isinf(item) and meta.get("finite", True))):
            is_ = "is" if item is value else "holds"
            raise UserError(f"'{key}' {is_} {item!r}, not a finite number", "set a finite value")
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
