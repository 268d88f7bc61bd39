"""loads.files: the streaming readers, alone (no database)."""

import io

import pytest

from loads.files import MAX_LINE, FileError, Unreadable, format_for, read_csv, read_ndjson


def rows(reader, data: bytes):
    return list(reader(io.BytesIO(data)))


def test_it_numbers_a_csv_row_by_the_line_it_starts_on():
    got = rows(read_csv, b'record_id,note\r\n1,"two\nlines"\r\n\r\n2,x\r\n')
    assert got == [(2, {"record_id": "1", "note": "two\nlines"}), (5, {"record_id": "2", "note": "x"})]


def test_it_reports_a_bad_csv_line_and_reads_on():
    got = rows(read_csv, b"record_id,name\n1,\xff\n2,b,extra\n3\n4,d\n")
    assert got == [
        (2, Unreadable("the line is not valid UTF-8.")),
        (3, Unreadable("the row has more values than the header's 2 columns.")),
        (4, Unreadable("the row has fewer values than the header's 2 columns.")),
        (5, {"record_id": "4", "name": "d"}),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"record_id,a,a\n1,2,3\n", "the header names a column twice: a."),
        (b"record_id,\xff\n", "the header row is not valid UTF-8."),
    ],
)
def test_it_refuses_a_bad_header(data, message):
    ((line, problem),) = rows(read_csv, data)
    assert line == 1 and message in problem.message


def test_it_reads_ndjson_line_by_line():
    got = rows(read_ndjson, b'{"record_id": 1}\n\n{"record_id": \n"x"\n\xff\n{"record_id": 2}')
    assert got[0] == (1, {"record_id": 1}) and got[-1] == (6, {"record_id": 2})
    assert [(line, type(p)) for line, p in got[1:-1]] == [(3, Unreadable), (4, Unreadable), (5, Unreadable)]
    assert "truncated" in got[1][1].message and "not str" in got[2][1].message


def test_it_tells_the_format_by_extension_or_refuses():
    assert (
        format_for("a.CSV") == "csv"
        and format_for("a.jsonl") == "ndjson"
        and format_for("-", "ndjson") == "ndjson"
    )
    for path in ("-", "a.txt"):
        with pytest.raises(FileError):
            format_for(path)


def test_it_refuses_nan_and_infinity_which_json_has_not():
    got = rows(read_ndjson, b'{"record_id": 1, "gpa": NaN}\n{"record_id": 2, "gpa": -Infinity}\n')
    assert [(line, type(p)) for line, p in got] == [(1, Unreadable), (2, Unreadable)]
    assert "NaN is not JSON" in got[0][1].message and "-Infinity is not JSON" in got[1][1].message


def test_it_reads_a_csv_and_ndjson_saved_with_a_byte_order_mark():
    # Excel's "CSV UTF-8" starts the file with one; it would stick to the first column's name.
    assert rows(read_csv, b"\xef\xbb\xbfrecord_id,name\n1,a\n") == [(2, {"record_id": "1", "name": "a"})]
    assert rows(read_ndjson, b'\xef\xbb\xbf{"record_id": 1}\n') == [(1, {"record_id": 1})]


class Counted(io.BytesIO):
    """A stream that remembers the longest single read asked of it."""

    longest = 0

    def readline(self, size=-1):
        line = super().readline(size)
        self.longest = max(self.longest, len(line))
        return line


@pytest.mark.parametrize("reader", [read_csv, read_ndjson])
def test_it_reports_an_over_long_line_without_reading_it_whole_and_reads_on(reader):
    head = b"record_id,name\n" if reader is read_csv else b""
    good = b"7,b\n" if reader is read_csv else b'{"record_id": 7}\n'
    stream = Counted(head + b"x" * (MAX_LINE * 5) + b"\n" + good)
    got = list(reader(stream))
    first = 2 if reader is read_csv else 1
    assert got[0] == (
        first,
        Unreadable(f"line {first} is longer than 1,048,576 bytes: no record is; was a newline lost?"),
    )
    assert got[1][0] == first + 1 and got[1][1]["record_id"] in ("7", 7)
    assert stream.longest <= MAX_LINE + 1  # five MiB on one line, never held at once
