"""The architecture as a test: which layer may import which, no import cycles, and every
subpackage listed in pyproject.toml.

Layers, bottom to top (README, "Architecture"):
  base       sleepstream.engine.{types, errors, protocols}
  runtime    the rest of sleepstream.engine, but for inference and app
  drivers    sleepstream.drivers
  inference  sleepstream.engine.inference
  models     sleepstream.models (PyTorch: training, evaluation, export)
  simulators sleepstream.simulators
  report     sleepstream.report (night tables, statistics, plots, the night report)
  store      sleepstream.store (the SQLite event store)
  web        sleepstream.web (web view, metrics and health on Starlette)
  app        sleepstream.engine.app, sleepstream.cluster (shards on Ray) and the package root
             (with its modules, e.g. the Python API): may import everything
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "drivers", "models", "simulators", "report", "cluster", "store", "web")
BASE = {"sleepstream.engine.types", "sleepstream.engine.errors", "sleepstream.engine.protocols"}

# layer -> layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "runtime": {"base"},
    "drivers": {"base", "runtime"},
    "inference": {"base", "runtime", "models"},
    "models": {"base", "runtime", "drivers", "inference"},  # training reads recordings
    "simulators": {"base", "runtime", "drivers"},
    "report": {"base", "runtime", "drivers"},
    "store": {"base", "runtime"},
    "web": {"base", "runtime", "store"},
    "app": {"base", "runtime", "drivers", "inference", "models", "simulators", "report", "store",
            "web"},
}


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) == 1 or parts[1] not in PACKAGES:
        return "app"  # the package root (sleepstream, sleepstream.__main__)
    if parts[1] == "engine" and len(parts) > 2 and parts[2] in ("app", "inference"):
        return parts[2]
    return {"engine": "runtime", "cluster": "app"}.get(parts[1], parts[1])


def modules() -> dict[str, Path]:
    found = {"sleepstream": ROOT / "__init__.py"}
    found.update({f"sleepstream.{p.stem}": p for p in ROOT.glob("*.py") if p.stem != "__init__"})
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found["sleepstream." + ".".join(parts)] = path
    return found


def imports(path: Path, module: str, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # TYPE_CHECKING blocks are not imports
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")[: len(module.split(".")) - node.level + int(is_pkg)]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith("sleepstream")}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_no_module_imports_a_layer_above_it():
    known = modules()
    bad = []
    for mod, path in known.items():
        src = layer(mod)
        for name in imports(path, mod, top_level_only=False):
            target = _resolve(name, known)
            if target is None:
                continue
            dst = layer(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{mod} ({src}) imports {target} ({dst})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_import_cycles():
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in known.items():
        for name in imports(path, mod, top_level_only=True):
            target = _resolve(name, known)
            if target and target != mod and not mod.startswith(target + "."):
                graph[mod].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for mod in sorted(known):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {"sleepstream"} | {
        "sleepstream." + ".".join(p.parent.relative_to(ROOT).parts)
        for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
    }
    assert listed == folders
