"""dashboard.charts: series to SVG, as pure functions (item 16 of issue 14)."""

import re
import xml.etree.ElementTree as ET

from dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    # The markup is inline SVG in HTML; parsed as XML it must be well formed too.
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_it_draws_each_point_with_its_label_and_value():
    svg = charts.line_chart(
        [0, 5, 2.5],
        ["2027-01-01", "2027-02-01", "2027-03-01"],
        "Enrollment",
        lambda v: f"{charts.number(v)}%",
    )
    points = parse(svg).findall(f"{SVG}circle")
    assert [p.find(f"{SVG}title").text for p in points] == [
        "2027-01-01: 0%",
        "2027-02-01: 5%",
        "2027-03-01: 2.5%",
    ]
    assert "polygon" not in svg  # no band: each point is one resync
    ys = [float(p.get("cy")) for p in points]
    assert ys[1] < ys[2] < ys[0]  # higher values are drawn higher
    assert 'aria-label="Enrollment"' in svg


def test_it_keeps_a_long_series_to_fifty_points_with_the_range_of_each():
    values = [i % 10 for i in range(500)]
    labels = [f"day {i}" for i in range(500)]
    svg = charts.line_chart(values, labels, "Long")
    points = parse(svg).findall(f"{SVG}circle")
    assert len(points) == charts.MOST == 50
    assert points[0].find(f"{SVG}title").text == "day 0 – day 9 (10 resyncs): mean 4.5, 0 to 9"
    assert parse(svg).find(f"{SVG}polygon") is not None  # the band from lowest to highest
    assert "day 0" in svg and "day 499" in svg  # the axis names the first and the last
    # Ten times the resyncs, about the same markup: the page does not grow with the history.
    longer = charts.line_chart(values * 10, [f"day {i}" for i in range(5000)], "Long")
    assert len(parse(longer).findall(f"{SVG}circle")) == 50 and len(longer) < len(svg) * 1.2


def test_it_buckets_consecutive_values_without_losing_any():
    out = charts.buckets([1, 2, 3, 4, 5, 6, 7], list("abcdefg"), most=3)
    assert [b.count for b in out] == [2, 2, 3]
    assert (out[2].low, out[2].mean, out[2].high, out[2].first, out[2].last) == (5, 6, 7, "e", "g")
    assert [b.count for b in charts.buckets([1, 2], ["a", "b"], most=50)] == [1, 1]


def test_it_puts_the_axis_top_on_a_round_number():
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 1, 1.2, 2.2, 3, 7, 120, 4000)] == [
        1,
        0.5,
        1,
        2,
        2.5,
        5,
        10,
        200,
        5000,
    ]


def test_it_escapes_what_it_writes():
    svg = charts.line_chart([1], ['<script>alert("x")</script>'], "<b>")
    assert "<script>" not in svg and "<b>" not in svg
    parse(svg)


def test_it_says_when_there_is_nothing_to_draw():
    svg = charts.line_chart([], [], "Empty")
    assert "No data" in svg and "circle" not in svg


def test_it_draws_a_bar_per_outcome_as_long_as_its_count():
    svg = charts.bar_chart(
        [("Green", 4, "status-green"), ("Red", 2, "status-red"), ("None", 0, "x")], "By outcome"
    )
    bars = parse(svg).findall(f"{SVG}rect")
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    assert [b.find(f"{SVG}title").text for b in bars] == ["Green: 4", "Red: 2", "None: 0"]
    assert re.search(r'class="bar status-red"', svg)
