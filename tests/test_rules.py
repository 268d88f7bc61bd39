"""The record rules are pure: each test builds a context by hand."""

from history.models import Reason
from resync.rules import Context, Record, check

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
