"""The resync planner: pure functions, no I/O.

Given the catalog (each object's immediate parents) and what is enabled, it
turns a selection into the order a resync runs in: layers of objects with no
dependency between them (they may run at once), parents always in an earlier
layer than their children.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Parents = Mapping[str, Sequence[str]]


class PlanError(ValueError):
    """A selection or catalog the planner refuses, with a message naming why."""


@dataclass(frozen=True)
class Plan:
    layers: tuple[tuple[str, ...], ...]
    added: tuple[str, ...] = field(default=())  # ancestors Check Dependencies added

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(name for layer in self.layers for name in layer)


def _key(name: str) -> tuple[str, str]:
    return (name.lower(), name)


def find_cycle(parents: Parents) -> list[str] | None:
    """Return one cycle as [a, b, ..., a] (each the parent of the previous), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in sorted(parents.get(node, ()), key=_key):
            if state.get(parent) == 1:
                return path[path.index(parent) :] + [parent]
            if parent not in state and (found := visit(parent)):
                return found
        path.pop()
        state[node] = 2
        return None

    for name in sorted(parents, key=_key):
        if name not in state and (found := visit(name)):
            return found
    return None


def check_catalog(parents: Parents) -> None:
    """Refuse a catalog with an unknown parent or a cycle."""
    for name, ps in parents.items():
        for p in ps:
            if p not in parents:
                raise PlanError(f"Catalog error: {name} names an unknown parent {p!r}.")
    cycle = find_cycle(parents)
    if cycle:
        raise PlanError("Catalog error: dependency cycle " + " -> ".join(cycle) + ".")


def ancestors(parents: Parents, name: str) -> set[str]:
    """Every object `name` depends on, directly or through others."""
    seen: set[str] = set()
    stack = list(parents.get(name, ()))
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(parents.get(p, ()))
    return seen


def ancestor_order(parents: Parents, name: str) -> list[str]:
    """Ancestors top-level first, immediate parents last: the article's Parent Objects column."""
    return [n for layer in depth_layers(parents, ancestors(parents, name)) for n in layer]


def depth_layers(parents: Parents, chosen: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Layer each chosen object one past the deepest chosen object it depends on.

    Dependencies run through objects that are not chosen (a disabled
    ReportingEntity, or a parent left out without Check Dependencies), so a
    child still runs after a chosen grandparent.
    """
    chosen = set(chosen)
    depth: dict[str, int] = {}

    def layer_of(name: str) -> int:
        if name not in depth:
            above = [layer_of(a) for a in ancestors(parents, name) if a in chosen]
            depth[name] = 1 + max(above, default=-1)
        return depth[name]

    for name in chosen:
        layer_of(name)
    count = 1 + max(depth.values(), default=-1)
    return tuple(tuple(sorted((n for n in chosen if depth[n] == i), key=_key)) for i in range(count))


def resolve(parents: Parents, names: Iterable[str], aliases: Mapping[str, str] | None = None) -> list[str]:
    """Map typed names (any case, or an alias) to catalog names; unknown names are refused."""
    by_lower = {n.lower(): n for n in parents}
    for alias, target in (aliases or {}).items():
        by_lower.setdefault(alias.lower(), target)
    out: list[str] = []
    unknown: list[str] = []
    for raw in names:
        match = by_lower.get(raw.strip().lower())
        if match is None:
            unknown.append(raw)
        elif match not in out:
            out.append(match)
    if unknown:
        raise PlanError("Unknown sync object(s): " + ", ".join(sorted(unknown, key=str.lower)) + ".")
    return out


def plan(
    parents: Parents,
    enabled: Iterable[str],
    selection: Iterable[str] | None = None,
    *,
    check_dependencies: bool = False,
) -> Plan:
    """Plan a resync.

    selection=None is a full resync: every enabled object. Otherwise the
    selection (catalog names) runs alone, or with every enabled ancestor when
    check_dependencies is set, always parents first.
    """
    check_catalog(parents)
    enabled = set(enabled)
    if selection is None:
        return Plan(depth_layers(parents, enabled))
    chosen = list(selection)
    if not chosen:
        raise PlanError("Select at least one sync object, or ask for a full resync.")
    unknown = [n for n in chosen if n not in parents]
    if unknown:
        raise PlanError("Unknown sync object(s): " + ", ".join(sorted(unknown, key=_key)) + ".")
    disabled = [n for n in chosen if n not in enabled]
    if disabled:
        raise PlanError("Not enabled in this deployment: " + ", ".join(sorted(disabled, key=_key)) + ".")
    picked = set(chosen)
    added: set[str] = set()
    if check_dependencies:
        for name in chosen:
            added |= {a for a in ancestors(parents, name) if a in enabled} - picked
    layers = depth_layers(parents, picked | added)
    return Plan(layers, tuple(sorted(added, key=_key)))
