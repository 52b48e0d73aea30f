"""The list settings: every bad item a problem of its own, a webhook URL given twice or cut at a
comma named by its items."""

from __future__ import annotations

import pytest

from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")


def test_every_bad_item_of_a_list_is_a_problem_of_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`EXESDB_WEBHOOK_URLS=ftp://x,notaurl` reports two problems, each naming its item."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://ok.example/a,ftp://x,notaurl"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 2: 'ftp://x' is not an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS item 3: not a URL; allowed: an http:// or https:// URL with a host",
    ]


def test_a_url_given_twice_in_the_webhook_urls_is_refused_naming_the_items(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same URL twice in EXESDB_WEBHOOK_URLS is refused naming the variable and the items
    (each group once), the URL shown without its credentials or path, not merged silently."""
    first, second = "https://u:pw@a.example/t0k3n", "http://b.example/hook"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{first},{second}, {first},{first},{second}"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS: items 1, 3 and 4 are the same URL, https://u:<redacted>@a.example/…;"
        " items 2 and 5 are the same URL, http://b.example/…; give each receiver once"
    ]
    assert "pw" not in err
    assert "t0k3n" not in err


def test_a_bad_webhook_url_does_not_hide_a_url_given_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`EXESDB_WEBHOOK_URLS=…/x,…/x,notaurl` reports both problems at once, exit 2: the bad
    item, and the good items given twice, compared without it."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_WEBHOOK_URLS="http://a.example/x,http://a.example/x,notaurl,notaurl",
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 3: not a URL; allowed: an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS item 4: not a URL; allowed: an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS: items 1 and 2 are the same URL, http://a.example/…;"
        " give each receiver once",
    ]


def test_a_comma_in_a_webhook_url_s_query_is_told_as_the_list_s_split(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_WEBHOOK_URLS is split at every comma: an item after a query that is no URL is told
    as the query's rest, to be written %2C; a query holding a URL before a comma and a URL is
    refused as a guess either way, saying how to write each; neither shows the URLs."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://a.example/t0k3n?tags=x,y"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 2: not a URL, and it follows item 1's query: the list is split"
        " at every comma, so a comma in a URL is written %2C (?tags=a%2Cb), or the URL goes in"
        " the receivers file (EXESDB_WEBHOOK_CONFIG_FILE)"
    ]
    relay = "https://a.example/t0k3n?to=https://b.example/s3cr3t"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{relay},https://c.example/x,https://c.example/x"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 1: its query holds a URL and a comma follows it, so whether"
        " item 2 is a receiver of its own or the rest of this query is a guess; the list is split"
        " at every comma: write a comma of the query as %2C (?to=URL%2CURL), or, for receivers of"
        " their own, the URL in the query percent-encoded (?to=https%3A%2F%2Fhost%2Fpath)",
        "  EXESDB_WEBHOOK_URLS: items 2 and 3 are the same URL, https://c.example/…;"
        " give each receiver once",
    ]
    assert "t0k3n" not in err
    assert "s3cr3t" not in err
    for taken in (f"{relay}%2Chttps://c.example/x", "https://a.example/x?a=1,https://c.example/x"):
        status, _, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_URLS=taken)
        assert status == 0, err


def test_each_item_a_comma_cut_from_a_webhook_url_s_query_is_told_as_its_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every item no URL after a query, not only the first (`?tags=x,y,z`: `y` and `z`), is told
    as that query's rest, naming the item the query is in; a URL after them, that query holding
    a URL, is refused as a guess as it is right after the query."""
    rest = (
        "not a URL, and it follows item 1's query: the list is split at every comma, so a comma"
        " in a URL is written %2C (?tags=a%2Cb), or the URL goes in the receivers file"
        " (EXESDB_WEBHOOK_CONFIG_FILE)"
    )
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://a.example/t0k3n?tags=x,y,z"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        f"  EXESDB_WEBHOOK_URLS item 2: {rest}",
        f"  EXESDB_WEBHOOK_URLS item 3: {rest}",
    ]
    relay = "https://a.example/t0k3n?to=https://b.example/s3cr3t"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{relay},x,https://c.example/x"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 1: its query holds a URL and a comma follows it, so whether"
        " item 3 is a receiver of its own or the rest of this query is a guess; the list is split"
        " at every comma: write a comma of the query as %2C (?to=URL%2CURL), or, for receivers of"
        " their own, the URL in the query percent-encoded (?to=https%3A%2F%2Fhost%2Fpath)",
        f"  EXESDB_WEBHOOK_URLS item 2: {rest}",
    ]
