"""The planner is pure: these tests build small catalogs by hand."""

import pytest

from resync import planner
from resync.catalog import parents_map

TOY = {
    "A": (),
    "B": ("A",),
    "C": ("A",),
    "D": ("B", "C"),
    "E": ("D",),
    "X": (),
}


def test_it_orders_a_full_resync_in_layers():
    p = planner.plan(TOY, TOY.keys())
    assert p.layers == (("A", "X"), ("B", "C"), ("D",), ("E",))
    assert p.order == ("A", "X", "B", "C", "D", "E")


def test_it_adds_ancestors_with_check_dependencies():
    p = planner.plan(TOY, TOY.keys(), ["E"], check_dependencies=True)
    assert p.layers == (("A",), ("B", "C"), ("D",), ("E",))
    assert p.added == ("A", "B", "C", "D")


def test_it_keeps_only_the_selection_without_check_dependencies():
    p = planner.plan(TOY, TOY.keys(), ["E", "B"])
    assert p.layers == (("B",), ("E",))
    assert p.added == ()


def test_it_is_deterministic_whatever_the_input_order():
    a = planner.plan(TOY, ["X", "E", "D", "C", "B", "A"], ["C", "B", "X"])
    b = planner.plan(TOY, ["A", "B", "C", "D", "E", "X"], ["X", "B", "C"])
    assert a == b


def test_it_skips_a_disabled_ancestor_but_keeps_the_order_through_it():
    p = planner.plan(TOY, ["A", "C", "E"], ["E"], check_dependencies=True)
    # B and D are disabled: E still runs after A and C.
    assert p.layers == (("A",), ("C",), ("E",))


def test_it_refuses_unknown_and_disabled_names():
    with pytest.raises(planner.PlanError, match="Unknown sync object.*Nope"):
        planner.plan(TOY, TOY.keys(), ["A", "Nope"])
    with pytest.raises(planner.PlanError, match="Not enabled.*B"):
        planner.plan(TOY, ["A"], ["B"])


def test_it_refuses_an_empty_selection():
    with pytest.raises(planner.PlanError, match="at least one"):
        planner.plan(TOY, TOY.keys(), [])


def test_it_names_a_cycle():
    looped = dict(TOY, A=("E",))
    with pytest.raises(planner.PlanError, match="cycle A -> E -> D -> B -> A"):
        planner.plan(looped, looped.keys())


def test_it_names_an_unknown_parent():
    with pytest.raises(planner.PlanError, match="B names an unknown parent 'Q'"):
        planner.check_catalog({"B": ("Q",)})


def test_it_resolves_names_case_insensitively_and_refuses_unknowns():
    assert planner.resolve(TOY, ["a", "E"]) == ["A", "E"]
    with pytest.raises(planner.PlanError, match="Zed"):
        planner.resolve(TOY, ["Zed"])


def test_it_plans_the_real_catalog_parents_first():
    parents = parents_map()
    enabled = [n for n in parents if n != "ReportingEntity"]
    p = planner.plan(parents, enabled)
    position = {name: i for i, layer in enumerate(p.layers) for name in layer}
    for child, ps in parents.items():
        for parent in ps:
            if child in position and parent in position:
                assert position[parent] < position[child], (parent, child)
    assert p.layers[0] == (
        "CourseCode",
        "District",
        "ISEPResidentialCertification",
        "ISEPResidentialVerification",
    )
    assert position["TestScore"] == position["Test"] + 1


def test_it_puts_objects_of_one_layer_out_of_each_others_ancestry():
    parents = parents_map()
    p = planner.plan(parents, parents.keys())
    for layer in p.layers:
        for name in layer:
            assert not (planner.ancestors(parents, name) & set(layer))
