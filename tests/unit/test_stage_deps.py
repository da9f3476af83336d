"""dvc.yaml lists every project file each stage imports: a change to any of them reruns the stage.

DVC only knows the dependencies written in dvc.yaml; one that is missing means a code change
reruns nothing and the cache goes stale silently. Each stage's import closure within the project
is computed from the source (every ``import``, at any depth in the file, plus the task's modules
that the registry functions of ``symbiotic.tasks`` load by name) and compared with its deps.
One-line package markers (``__init__.py`` holding only a docstring) are left out: they carry no code.
Non-Python files a module reads beside itself (the native runtime's C++ source) are included.
``python scripts/stage_deps.py`` rewrites dvc.yaml's code deps from these closures.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

SRC = ROOT / "src"
# What each registry function of symbiotic/tasks/__init__.py imports by name, for a task.
REGISTRY = {"task_module": "symbiotic.tasks.{task}", "task_class": "symbiotic.tasks.{task}",
            "task_preparation": "symbiotic.tasks.{task}_prepare"}


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # a submodule, if it is one
    return names


def _carries_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return not (path.name == "__init__.py" and all(isinstance(n, ast.Expr) for n in body))


def closure(script: Path, task: str | None) -> set[Path]:
    """Every project file that running ``script`` for ``task`` may execute."""
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names = _imported(path)
        if path.name == "_args.py" or path.parent == ROOT / "stages":
            local = path.parent / "_args.py"
            if "_args" in names and local.is_file():
                todo.append(local)
        if task is not None:  # a registry function imports the task's module by name
            names |= {m.format(task=task) for f, m in REGISTRY.items() if f"symbiotic.tasks.{f}" in names}
        for name in names:
            parts = name.split(".")
            if parts[0] != "symbiotic":
                continue
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                found = _module_file(".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    return {p for p in seen if _carries_code(p)} | {c for p in seen for c in _companions(p)}


def _companions(path: Path) -> set[Path]:
    """Files a module reads beside itself (``Path(__file__).with_name("hlstm.cpp")``): the native
    runtime compiles its C++ source on first use, so a change to it must rerun the stage."""
    return {path.with_name(n) for n in re.findall(r'with_name\("([^"]+)"\)', path.read_text())
            if path.with_name(n).is_file()}


def _expand(value, key: str, item: dict):
    if isinstance(value, str):
        value = value.replace("${key}", key).replace("${item}", key)
        return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [_expand(v, key, item) for v in value]
    if isinstance(value, dict):
        return {_expand(k, key, item): _expand(v, key, item) for k, v in value.items()}
    return value


def _stages() -> list[tuple[str, str | None, dict]]:
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    out = []
    for name, stage in doc["stages"].items():
        if "foreach" in stage:
            items = stage["foreach"]  # a list (a generic stage: ${item} is the task) or per-task slots
            for key, item in (items.items() if isinstance(items, dict) else ((t, {}) for t in items)):
                out.append((f"{name}@{key}", key, _expand(stage["do"], key, item)))
        else:
            out.append((name, name.split("_", 1)[1] if "_" in name else None, stage))
    return out


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


STAGES = _stages()


@pytest.mark.parametrize("name,task,stage", STAGES, ids=[s[0] for s in STAGES])
def test_dvc_yaml_lists_every_file_the_stage_imports(name, task, stage):
    script = ROOT / re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    missing = sorted(str(p.relative_to(ROOT)) for p in closure(script, task) if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} imports but does not list: {', '.join(missing)}"


def test_the_closure_follows_imports_inside_functions_and_the_task_registry():
    found = closure(ROOT / "stages" / "grow_lhp.py", "an4")
    rel = {str(p.relative_to(ROOT)) for p in found}
    assert "src/symbiotic/tasks/an4.py" in rel and "src/symbiotic/tasks/ptb.py" not in rel
    assert "src/symbiotic/runtime/ds2.py" in rel  # imported inside AN4Task.export


def test_the_prepare_stage_imports_its_own_preparation_and_no_model_code():
    for task, other in (("ptb", "an4"), ("an4", "ptb")):
        rel = {str(p.relative_to(ROOT)) for p in closure(ROOT / "stages" / "prepare.py", task)}
        assert f"src/symbiotic/tasks/{task}_prepare.py" in rel and f"src/symbiotic/data/{task}.py" in rel
        assert f"src/symbiotic/tasks/{task}.py" not in rel and f"src/symbiotic/data/{other}.py" not in rel
