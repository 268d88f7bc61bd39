"""The Error Log by cause: its rows grouped by district, object and reason, in the
order that fixes most first (Campus' Ed-Fi Error Log, PowerSchool's "work from top
to bottom").

A record whose parent is not at the state (parent_missing) fails because of its
parent: the parent's own errors come first, counted with the children they hold
back, and the child's group names the parent objects to look at.

Four queries whatever the number of rows: one GROUP BY for the counts, one for the
first examples of every group (a window function, not a query per group), and the
catalog's parents (two).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import RowNumber

from resync.models import SyncObject
from resync.rules import REASON_HELP, Reason

EXAMPLES = 3


@dataclass
class Cause:
    """One district's errors of one object for one reason."""

    district_id: int
    district: str  # its code
    object_id: int
    object: str
    reason: str
    count: int
    examples: list[dict] = field(default_factory=list)  # the first rows: record_id, message
    parents: tuple[str, ...] = ()  # parent_missing: the objects whose records are missing
    parents_with_errors: tuple[str, ...] = ()  # of those, the ones with errors of their own here
    blocks: int = 0  # errors of child objects (here) this object's missing records cause

    @property
    def label(self) -> str:
        return Reason(self.reason).label if self.reason in Reason.values else self.reason

    @property
    def help(self) -> str:
        return REASON_HELP.get(self.reason, "")

    @property
    def fixes(self) -> int:
        """The errors fixing this one clears: its own and those of the children it holds back."""
        return self.count + self.blocks

    @property
    def caused_by_parent(self) -> bool:
        return self.reason == Reason.PARENT_MISSING


def summarise(rows: QuerySet, examples: int = EXAMPLES) -> list[Cause]:
    """The ErrorLog rows of `rows` (already narrowed to what the user may see) by
    district, object and reason, most fixed first."""
    keys = ("district_id", "sync_object_id", "reason")
    groups = (
        rows.order_by()  # the model's ordering would split the groups
        .values(*keys, "district__code", "sync_object__name")
        .annotate(n=Count("id"))
    )
    causes = {
        (g["district_id"], g["sync_object_id"], g["reason"]): Cause(
            g["district_id"],
            g["district__code"],
            g["sync_object_id"],
            g["sync_object__name"],
            g["reason"],
            g["n"],
        )
        for g in groups
    }
    if not causes:
        return []
    first = (
        rows.order_by()
        .annotate(rank=Window(RowNumber(), partition_by=[F(k) for k in keys], order_by=F("id").asc()))
        .filter(rank__lte=examples)
        .values_list(*keys, "record_id", "message")
        .order_by("id")
    )
    for d, o, r, record_id, message in first:
        if (d, o, r) in causes:
            causes[d, o, r].examples.append({"record_id": record_id, "message": message})
    explain_parents(list(causes.values()), SyncObject.objects.parents_map())
    return sorted(causes.values(), key=lambda c: (-c.fixes, -c.count, c.district, c.object, c.reason))


def explain_parents(causes: list[Cause], parents: dict[str, tuple[str, ...]]) -> None:
    """Name each parent_missing group's parents, and count on every group of a parent
    object (in the same district) the children's parent_missing errors it holds back,
    down the whole tree: fixing a District's error lets its Schools through, and theirs."""
    missing = {(c.district, c.object): c.count for c in causes if c.caused_by_parent}
    erring = {(c.district, c.object) for c in causes}
    children: dict[str, list[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(child)

    def held_back(district: str, obj: str, seen: frozenset[str]) -> int:
        total = 0
        for child in children.get(obj, ()):
            if child in seen or (district, child) not in missing:
                continue
            total += missing[district, child] + held_back(district, child, seen | {child})
        return total

    for c in causes:
        c.blocks = held_back(c.district, c.object, frozenset({c.object}))
        if c.caused_by_parent:
            c.parents = parents.get(c.object, ())
            c.parents_with_errors = tuple(p for p in c.parents if (c.district, p) in erring)
