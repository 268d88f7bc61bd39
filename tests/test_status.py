import pytest

from resync.status import GRAY, GREEN, RED, YELLOW, colour, worst


@pytest.mark.parametrize(
    "processed, errors, expected",
    [
        (0, 0, GREEN),
        (100, 0, GREEN),
        (100, 1, YELLOW),  # exactly 1% is Yellow
        (99, 1, RED),  # just over 1%
        (1000, 10, YELLOW),
        (1000, 11, RED),
        (1, 1, RED),
    ],
)
def test_it_colours_by_the_one_percent_rule(processed, errors, expected):
    assert colour(processed, errors) == expected


def test_it_is_gray_while_running_whatever_the_counts():
    assert colour(100, 50, finished=False) == GRAY


def test_it_takes_the_worst_colour_for_a_request():
    assert worst([GREEN, YELLOW, GREEN]) == YELLOW
    assert worst([GREEN, RED, YELLOW]) == RED
    assert worst([GREEN]) == GREEN
