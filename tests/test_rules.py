"""The record rules are pure: each test builds a context by hand."""

from resync.rules import Context, Reason, Record, check

GOOD_TEST = {"state_code": "KPREP", "published": True, "end_year": 2027}


def score_ctx(test=None, blocked=(), enrolled=(7,)):
    return Context(
        "TestScore",
        ("PersonIdentity", "Test"),
        2027,
        present={"PersonIdentity": {7, 8}, "Test": {3}},
        tests={3: GOOD_TEST if test is None else test},
        blocked_tests=set(blocked),
        enrolled=set(enrolled),
    )


def score(date="2026-10-01", person=7):
    return Record(50, {"PersonIdentity": person, "Test": 3}, {"date": date, "score": 20})


def reason(record, ctx):
    result = check(record, ctx)
    return result and result[0]


def test_it_passes_a_good_score():
    assert check(score(), score_ctx()) is None


def test_it_refuses_a_state_excluded_record_first():
    ctx = Context("Enrollment", ("PersonIdentity",), 2027, present={"PersonIdentity": {1}})
    assert reason(Record(1, {"PersonIdentity": 1}, {}, state_excluded=True), ctx) == Reason.STATE_EXCLUDED


def test_it_refuses_a_record_whose_parent_is_not_at_the_state():
    ctx = Context("Enrollment", ("PersonIdentity",), 2027, present={"PersonIdentity": {1}})
    assert reason(Record(1, {"PersonIdentity": 2}, {}), ctx) == Reason.PARENT_MISSING
    assert reason(Record(1, {}, {}), ctx) == Reason.PARENT_MISSING
    assert (
        "parent PersonIdentity 2 is not at the state" in check(Record(1, {"PersonIdentity": 2}, {}), ctx)[1]
    )


def test_it_needs_a_state_or_national_code():
    assert reason(score(), score_ctx(dict(GOOD_TEST, state_code=""))) == Reason.TEST_NO_CODE
    assert check(score(), score_ctx(dict(GOOD_TEST, state_code="", national_code="ACT"))) is None


def test_it_needs_the_test_published_from_the_state_edition():
    assert reason(score(), score_ctx(dict(GOOD_TEST, published=False))) == Reason.TEST_UNPUBLISHED


def test_it_blocks_every_score_of_a_blocked_test():
    assert reason(score(), score_ctx(blocked=[3])) == Reason.TEST_NO_DATE


def test_it_needs_the_date_or_end_year_in_the_scope_year():
    assert reason(score("2026-06-30"), score_ctx()) == Reason.OUT_OF_SCOPE  # last day of 2025-26
    assert check(score("2026-07-01"), score_ctx()) is None  # first day of 2026-27
    assert check(score("2027-06-30"), score_ctx()) is None
    assert reason(score("2027-07-01"), score_ctx()) == Reason.OUT_OF_SCOPE
    # No date: the test's end year decides.
    assert check(score(None), score_ctx()) is None
    assert reason(score(None), score_ctx(dict(GOOD_TEST, end_year=2026))) == Reason.OUT_OF_SCOPE


def test_it_refuses_a_district_locked_test():
    assert reason(score(), score_ctx(dict(GOOD_TEST, district_locked=True))) == Reason.TEST_LOCKED


def test_it_needs_the_student_actively_enrolled():
    assert reason(score(person=8), score_ctx()) == Reason.NOT_ENROLLED


BAD_IDS = ["abc", 1.5, True, False, [1], {"id": 1}, 2**63, -(2**63) - 1, "1.0", " 1", "١٢"]


def test_it_errors_a_parent_id_that_is_not_a_whole_number_as_malformed_naming_it():
    ctx = Context("Day", ("Calendar",), 2027, present={"Calendar": {1}})
    for bad in BAD_IDS:
        result = check(Record(9, {"Calendar": bad}, {}), ctx)
        assert result is not None and result[0] == Reason.MALFORMED, bad
        assert result[1].startswith(f"Day 9: parent Calendar id {bad!r}"[:40]), result[1]
        assert "is not a whole number" in result[1]
    # Whole numbers, also as digits in text, are ids; a missing one is missing, not malformed.
    assert check(Record(9, {"Calendar": 1}, {}), ctx) is None
    assert check(Record(9, {"Calendar": "1"}, {}), ctx) is None
    assert reason(Record(9, {"Calendar": None}, {}), ctx) == Reason.PARENT_MISSING
    assert reason(Record(9, {"Calendar": 2**63 - 1}, {}), ctx) == Reason.PARENT_MISSING


def test_it_errors_parent_ids_or_a_payload_that_is_not_an_object_as_malformed():
    ctx = Context("Day", ("Calendar",), 2027, present={"Calendar": {1}})
    for bad in (["Calendar", 1], "1", 1, None, True):
        assert check(Record(9, bad, {}), ctx) == (
            Reason.MALFORMED,
            f"Day 9: parent_ids {bad!r} is not a JSON object.",
        )
        assert check(Record(9, {"Calendar": 1}, bad), ctx) == (
            Reason.MALFORMED,
            f"Day 9: payload {bad!r} is not a JSON object.",
        )
    # An object without parents is held to the same shape.
    assert reason(Record(1, [], {}), Context("CourseCode", (), 2027)) == Reason.MALFORMED
    # State-excluded comes first, whatever the record holds.
    assert reason(Record(9, "x", [], state_excluded=True), ctx) == Reason.STATE_EXCLUDED


def test_it_errors_a_score_whose_test_or_student_id_is_malformed():
    for field in ("Test", "PersonIdentity"):
        for bad in BAD_IDS:
            record = Record(50, {"PersonIdentity": 7, "Test": 3} | {field: bad}, {"date": "2026-10-01"})
            result = check(record, score_ctx())
            assert result is not None and result[0] == Reason.MALFORMED, (field, bad)
            assert f"parent {field} id" in result[1]
    # Read even when the test's parents are not checked (Test disabled in the catalog).
    ctx = Context("TestScore", (), 2027, tests={3: GOOD_TEST}, enrolled={7})
    assert reason(Record(50, {"PersonIdentity": 7, "Test": "abc"}, {"date": "2026-10-01"}), ctx) == (
        Reason.MALFORMED
    )
    assert reason(Record(50, {"PersonIdentity": [7], "Test": 3}, {"date": "2026-10-01"}), ctx) == (
        Reason.MALFORMED
    )
    assert check(Record(50, {"PersonIdentity": "7", "Test": "3"}, {"date": "2026-10-01"}), ctx) is None


def test_it_errors_a_score_date_that_is_not_a_date_as_malformed():
    for bad, why in [
        (20261001, "is not text"),
        (["2026-10-01"], "is not text"),
        (True, "is not text"),
        ({"d": 1}, "is not text"),
        ("tomorrow", "is not a date (YYYY-MM-DD)"),
        ("2026-13-01", "is not a date (YYYY-MM-DD)"),
    ]:
        assert check(score(bad), score_ctx()) == (
            Reason.MALFORMED,
            f"TestScore 50: score date {bad!r} {why}.",
        )
    assert check(score("2026-10-01T08:00:00"), score_ctx()) is None
    assert check(score(""), score_ctx()) is None  # empty is no date: the end year decides


def test_it_ignores_a_test_whose_own_payload_is_not_an_object():
    # The Test's own step errors it; its scores read it as a test with no code.
    assert reason(score(), score_ctx(test=["not", "an", "object"])) == Reason.TEST_NO_CODE
