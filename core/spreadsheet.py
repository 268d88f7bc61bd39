"""CSV cells a spreadsheet opens as text, never as a formula (CSV injection).

A district's text reaches the state's and the admin's CSV files (a school name, an
error message, a refused row). A cell starting with `=`, `+`, `-` or `@` (or a tab or
carriage return, which some spreadsheets skip before reading one of those) is run
as a formula when the file is opened: `=HYPERLINK(...)` in a name becomes a link
that leaks data. OWASP's advice, followed here: prefix such a text cell with a
single quote. A number is not text: an integer field's -5 is written as -5 (its
writer passes it as a number, and cell() leaves anything but a string alone).
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text(value: str) -> str:
    """A text cell as written: quoted with `'` when a spreadsheet would run it."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: object) -> object:
    """Any cell: text made safe (text()), anything else (a number, a date) as it is."""
    return text(value) if isinstance(value, str) else value
