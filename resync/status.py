"""The status colour of a resync step: one rule, used everywhere it is shown."""

GRAY, GREEN, YELLOW, RED = "gray", "green", "yellow", "red"


def colour(processed: int, errors: int, finished: bool = True) -> str:
    """Gray while running; Green without errors; Yellow when errors are at most
    1% of the records processed; Red above that."""
    if not finished:
        return GRAY
    if errors == 0:
        return GREEN
    # Integer arithmetic: exactly 1% is Yellow, with no float rounding at the edge.
    return YELLOW if errors * 100 <= processed else RED


def worst(colours: list[str]) -> str:
    """The overall colour of a request: its worst step."""
    for c in (RED, YELLOW, GREEN):
        if c in colours:
            return c
    return GREEN
