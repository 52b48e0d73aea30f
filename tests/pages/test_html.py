"""The pages' renderer escapes every value unless it is markup the pages made themselves."""

from __future__ import annotations

import pytest

from bridge.pages.html import Fragment, Html, escape, join
from bridge.pages.widgets import (
    ack_button,
    age,
    age_since,
    badge,
    countdown,
    meter,
    table,
    timestamp,
    utc,
)
from tests.sinks.alerts.test_transitions import alert

HOSTILE = """<script>alert("x")</script>' onmouseover='y' & "z" """


def test_a_value_is_escaped_in_text_and_attributes() -> None:
    """Angle brackets, ampersands and both quotes are escaped, so a value stays text."""
    shown = Fragment('<a title="${value}">${value}</a>')(value=HOSTILE)
    assert "<script>" not in shown
    assert '"' not in shown.split('title="', 1)[1].split('">', 1)[0]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27; onmouseover=" in shown


@pytest.mark.parametrize(
    "hidden",
    ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2060", "\u2066",
     "\u2069", "\ufeff", "\u061c"],
    ids=ascii,
)  # fmt: skip
def test_a_zero_width_or_bidirectional_character_is_shown_as_its_escape(hidden: str) -> None:
    """A zero-width character or bidirectional control in a value (a title) is shown as its
    escape, in text and attributes, so that ``node-1`` followed by one does not look like
    ``node-1``; the Acknowledge button's alert id, which the page posts back, keeps it."""
    title = f"disk{hidden} full <b>"
    shown = Fragment('<a title="${value}">${value}</a>')(value=title)
    escaped = f"disk\\u{ord(hidden):04x} full &lt;b&gt;"
    assert shown == f'<a title="{escaped}">{escaped}</a>'
    assert hidden not in shown
    button = ack_button(alert(alert_id=f"id{hidden}1", title=title))
    assert f'data-ack="id{hidden}1"' in button
    assert f'data-title="{escaped}"' in button


def test_markup_made_here_is_kept_and_escaped_only_once() -> None:
    """A rendered fragment nested in another stays markup; escaping twice changes nothing."""
    inner = Fragment("<b>${text}</b>")(text="<i>")
    assert Fragment("<p>${inner}</p>")(inner=inner) == "<p><b>&lt;i&gt;</b></p>"
    assert escape(escape("<i>")) == "&lt;i&gt;"
    assert join([Html("<br>"), escape("<br>")]) == "<br>&lt;br&gt;"


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    """A template placeholder left unfilled fails loudly."""
    with pytest.raises(KeyError):
        Fragment("${one} ${two}")(one="1")


def test_widgets_escape_what_they_are_given() -> None:
    """Badges, meters and tables escape their values; an unknown tone is grey, not injected."""
    assert badge("<b>", 'x" onclick="y') == '<span class="badge tone-none">&lt;b&gt;</span>'
    assert badge("critical") == '<span class="badge sev-critical">critical</span>'
    assert "<td>&lt;i&gt;</td>" in table(["<h>"], [["<i>"]])
    assert "&lt;h&gt;" in table(["<h>"], [])
    assert 'value="100.0"' in meter(120.0, 85, 95)  # the bar is capped; the number is not
    assert ">120%<" in meter(120.0, 85, 95)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.9, "59s"), (61, "1m 01s"), (3600, "1h 00m"), (90_061, "1d 1h"), (-5, "0s")],
)
def test_ages_read_as_people_say_them(seconds: float, shown: str) -> None:
    """Durations are shown in their two largest units."""
    assert age(seconds) == shown


# 0999-12-31 23:59:59 UTC and 0001-01-01 00:00:00 UTC, in Unix seconds.
YEAR_999_ENDS = -30_610_224_001
YEAR_1_STARTS = -62_135_596_800


def test_times_before_the_year_1000_are_shown_with_four_digits_of_year() -> None:
    """A time before the year 1000 reads with its year in four digits, as format_timestamp
    writes it, in the text and the <time> alike: not "999-12-31"."""
    assert utc(YEAR_999_ENDS) == "0999-12-31 23:59:59 UTC"
    assert utc(YEAR_1_STARTS) == "0001-01-01 00:00:00 UTC"
    assert utc(1_764_288_000) == "2025-11-28 00:00:00 UTC"
    shown = timestamp(YEAR_999_ENDS)
    assert "0999-12-31T23:59:59Z" in shown
    assert ">0999-12-31 23:59:59 UTC<" in shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(1e12, "9999-12-31 23:59:59 UTC"), (1e300, "9999-12-31 23:59:59 UTC"), (-1e12, "0001-01-01")],
)
def test_a_time_past_the_year_9999_is_shown_as_its_last_second_not_a_traceback(
    seconds: float, shown: str
) -> None:
    """A time no datetime holds (a hand-edited outbox's, in the year 33658) reads as the
    nearest one there is, in the text and the <time> alike."""
    assert utc(seconds).startswith(shown)
    assert shown.replace(" UTC", "") in timestamp(seconds)


@pytest.mark.parametrize(
    ("seconds", "moment", "shown"),
    [
        (float("inf"), 253_402_300_799, "9999-12-31 23:59:59 UTC"),
        (float("-inf"), YEAR_1_STARTS, "0001-01-01 00:00:00 UTC"),
        (float("nan"), YEAR_1_STARTS, "0001-01-01 00:00:00 UTC"),  # Go's zero time: unset
    ],
    ids=["inf", "-inf", "nan"],
)
def test_an_infinite_or_nan_time_is_counted_from_the_time_shown_not_a_traceback(
    seconds: float, moment: int, shown: str
) -> None:
    """An age or countdown of an infinite or NaN time (a hand-edited outbox's) counts from the
    nearest time there is, the one shown on hover, for the page and its script alike."""
    for now in (1_764_288_000.0, None):
        for counted, attribute in ((age_since, "data-since"), (countdown, "data-until")):
            markup = counted(seconds, now)
            assert f'{attribute}="{moment}"' in markup, markup
            assert f'title="{"since" if counted is age_since else "at"} {shown}"' in markup
