"""The tree's dependencies point one way (README, Architecture).

Every import of our own code is read from the source, at module level and inside
functions alike, so a cycle hidden in a function body counts as much as one at the
top. Two rules: no module imports itself back through others, and a package
imports only packages below it in LAYERS (or itself). Migrations are left out:
they name the apps they depend on through Django, and historical models.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first: a package may import only those before it. The README's Architecture
# section explains each one's job; change both together.
LAYERS = (
    "core",
    "resync",
    "audit",
    "history",
    "alerts",
    "notify",
    "runner",
    "loads",
    "tool",
    "verification",
    "selective",
    "yearswitch",
    "schedules",
    "dashboard",
    "statecopy",
    "worker",
    "live",
    "statesync",
    "bench",
)


def modules() -> dict[str, Path]:
    """Our modules by dotted name, migrations and tests aside."""
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: set[str], package: str = "") -> set[str]:
    """The modules of ours `path` imports anywhere in it: `from a import b` names the
    module a.b when there is one, else the module a. `package` is the one `path` is in,
    against which relative imports (`from .models import X`) resolve."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            subs = {f"{base}.{alias.name}" for alias in node.names}
            named = subs & known
            out |= named
            if named != subs:
                out.add(base)
    return {name for name in out if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges[name] = imports(path, known, package) - {name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a package above the importer's own in LAYERS."""
    rank = {package: i for i, package in enumerate(LAYERS)}
    return sorted(
        f"{module} imports {target}"
        for module, targets in edges.items()
        for target in targets
        if rank[target.split(".")[0]] > rank[module.split(".")[0]]
    )


def test_it_finds_a_cycle_and_an_upward_import():
    # The checks themselves must be able to fail.
    edges = {"core.a": {"resync.b"}, "resync.b": {"core.a"}, "resync.c": set()}
    assert cycles(edges) == [["core.a", "resync.b"]]
    assert upward(edges) == ["core.a imports resync.b"]


def test_it_reads_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from resync import rights\n    import core.errors\n")
    assert imports(source, {"resync", "resync.rights", "core.errors"}) == {"resync.rights", "core.errors"}


def test_it_resolves_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from . import planner\nfrom .models import District\nfrom ..core import errors\n")
    known = {"resync", "resync.planner", "resync.models", "core.errors"}
    assert imports(source, known, "resync") == {"resync.planner", "resync.models", "core.errors"}


def test_it_has_every_package_in_a_layer():
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert ours == set(LAYERS)


def test_it_has_no_import_cycle():
    assert cycles(graph()) == []


def test_it_imports_only_downward():
    assert upward(graph()) == []
