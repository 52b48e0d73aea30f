"""The pages' refreshes over plain HTTP: ETags, ``If-None-Match`` answered 304, and gzip."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from bridge.pages import CONTENT_SECURITY_POLICY
from bridge.pages.conditional import none_match
from tests.pages.helpers import page_bridge, raise_alert
from tests.support import ADMIN_TOKEN, async_wait_until

TAG = '"0123456789abcdef0123456789abcdef"'
OTHER = '"fedcba9876543210fedcba9876543210"'
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture
async def raw() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that sends only the headers given and leaves bodies as they came."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    ) as session:
        yield session


async def get(
    client: aiohttp.ClientSession, url: str, headers: Any = PLAIN
) -> tuple[int, Any, bytes]:
    """GET ``url`` with ``headers`` (a dict, or a CIMultiDict for repeated fields)."""
    async with client.get(url, headers=headers) as response:
        return response.status, response.headers, await response.read()


@pytest.mark.parametrize(
    ("fields", "matches"),
    [
        ([TAG], True),
        ([f"W/{TAG}"], True),  # weak comparison: W/ is ignored
        ([OTHER], False),
        ([f"{OTHER}, {TAG}"], True),
        ([f'W/"x", {OTHER},W/{TAG}'], True),
        ([f"{OTHER} ,  W/{OTHER}"], False),
        ([f"{OTHER},, {TAG}"], True),  # an empty list element is allowed
        ([OTHER, TAG], True),  # one field per header line
        (["*"], True),
        ([" * "], True),
        ([TAG.strip('"')], False),  # not quoted: no entity tag, the field is ignored
        ([f"{TAG} {TAG}"], False),  # no comma between them: not a list
        ([f"{TAG}, nonsense"], False),  # a list that goes wrong is ignored whole
        (['"a,b"'], False),  # a comma inside a tag belongs to it
        ([""], False),
        ([], False),
        ([", ".join([OTHER] * 63 + [TAG])], True),
        ([", ".join([OTHER] * 64 + [TAG])], False),  # the 65th tag is not read
        ([OTHER] * 64 + [TAG], False),  # nor on a line of its own
    ],
)
def test_if_none_match_compares_weakly_over_each_listed_tag(
    fields: list[str], matches: bool
) -> None:
    """If-None-Match names the ETag when any listed tag has its opaque part (W/ or not), or is
    ``*``; a field that is not a list of quoted tags names nothing, and tags past the 64th are
    not read (a head may hold a megabyte of them)."""
    assert none_match(fields, TAG) is matches
    assert none_match(fields, "W/" + TAG) is matches


async def test_the_live_part_is_answered_304_while_it_is_the_same(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """The live part has a strong ETag (a digest of its bytes); sent back in If-None-Match, as a
    weak tag, in a list or as ``*``, it is answered 304 without a body, with the ETag and the
    page's headers; another tag, or none, gets the part."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        url = server.url + "/?part=live"
        status, headers, body = await get(raw, url)
        etag = headers["ETag"]
        answers = {
            name: await get(raw, url, {**PLAIN, "If-None-Match": value})
            for name, value in {
                "same": etag,
                "weak": "W/" + etag,
                "listed": f'"other", W/"x", {etag}',
                "any": "*",
                "other": '"other"',
                "malformed": etag.strip('"'),
            }.items()
        }
        repeated = CIMultiDict([*PLAIN.items(), ("If-None-Match", '"a"'), ("If-None-Match", etag)])
        answers["two fields"] = await get(raw, url, repeated)
    assert status == 200
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert headers["Vary"] == "Accept-Encoding"
    assert b"one alert" in body
    for name in ("same", "weak", "listed", "any", "two fields"):
        code, sent, content = answers[name]
        assert (code, content) == (304, b""), name
        assert sent["ETag"] == etag, name
        assert sent["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, name
        assert sent["Cache-Control"] == "no-store", name
    for name in ("other", "malformed"):
        assert answers[name][0] == 200, name
        assert answers[name][2] == body, name


async def test_only_time_passing_leaves_the_live_part_the_same(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """Ages (the uptime, each alert's) are counted by the page's script: a second later the
    live part is still answered 304, and a new alert changes it (the old tag gets the new
    part, with a new tag)."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        url = server.url + "/?part=live"
        _, headers, _ = await get(raw, url)
        etag = headers["ETag"]
        asked = time.time()
        await async_wait_until(lambda: time.time() > asked + 1.1, 5, "a second later")
        later, _, _ = await get(raw, url, {**PLAIN, "If-None-Match": etag})
        raise_alert(server, "a2", "another alert")
        changed, headers, body = await get(raw, url, {**PLAIN, "If-None-Match": etag})
    assert later == 304
    assert changed == 200
    assert headers["ETag"] != etag
    assert b"another alert" in body


async def test_a_client_accepting_gzip_gets_the_part_gzipped_with_the_tag_made_weak(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """Accept-Encoding with gzip gets the same bytes gzip-coded, tagged W/ and the same
    opaque tag (another representation of the same part), either tag answered 304; gzip at
    q=0 is not accepted."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        url = server.url + "/?part=live"
        _, plain_headers, plain = await get(raw, url)
        browser = {"Accept-Encoding": "gzip, deflate, br, zstd"}
        status, headers, coded = await get(raw, url, browser)
        etag = plain_headers["ETag"]
        again = [
            await get(raw, url, {**browser, "If-None-Match": tag}) for tag in (etag, "W/" + etag)
        ]
        refused = await get(raw, url, {"Accept-Encoding": "gzip;q=0, identity"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["ETag"] == "W/" + etag
    assert gzip.decompress(coded) == plain
    assert len(coded) < len(plain) / 3
    assert [(code, sent["ETag"]) for code, sent, _ in again] == [(304, "W/" + etag)] * 2
    assert "Content-Encoding" not in refused[1]
    assert refused[2] == plain


async def test_gzip_refused_by_name_is_not_taken_from_a_star(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """``*`` in Accept-Encoding stands only for the codings not named (RFC 9110 12.5.3): with
    gzip named at q=0 the part is sent as it is, whatever ``*`` says and wherever it stands;
    ``*`` or ``x-gzip`` above q=0, gzip not named at 0, get it gzip-coded; codings past the
    64th are not read."""
    fields = {
        "gzip;q=0, *": False,
        "*, gzip;q=0": False,
        "x-gzip;q=0, *;q=1": False,
        "identity, *;q=0": False,
        "*;q=0.5": True,
        "x-gzip": True,
        "gzip;q=0.1, *;q=0": True,
        ", ".join(["identity"] * 64) + ", gzip": False,  # the 65th coding is not read
    }
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        url = server.url + "/?part=live"
        coded = {
            field: (await get(raw, url, {"Accept-Encoding": field}))[1].get("Content-Encoding")
            for field in fields
        }
    assert coded == {field: "gzip" if gzipped else None for field, gzipped in fields.items()}


async def test_the_page_carries_its_live_parts_etag_for_the_first_refresh(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """The whole page (itself untagged: it says when it was rendered) holds the ETag of its
    live part, which the script sends on its first refresh; an alert's page too."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        pages: dict[str, tuple[Any, str, str]] = {}
        for path in ("/", "/alerts/a1"):
            _, headers, body = await get(raw, server.url + path)
            _, live, _ = await get(raw, server.url + path + "?part=live")
            pages[path] = (headers, body.decode(), live["ETag"])
    for path, (headers, page, etag) in pages.items():
        assert "ETag" not in headers, path
        assert f'<div id="live" data-etag="{etag.replace(chr(34), "&quot;")}">' in page, path


async def test_an_alerts_page_is_answered_304_while_it_is_the_same(
    tmp_path: Path, raw: aiohttp.ClientSession
) -> None:
    """An alert's live part (rendered for each request) is tagged and answered 304 while
    unchanged, a second later too (its age is counted by the script), and the new part once it
    changes (acknowledged); an unknown alert's stays 404, whatever If-None-Match says (only a
    200 is conditional)."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        url = server.url + "/alerts/a1?part=live"
        _, headers, _ = await get(raw, url)
        etag = headers["ETag"]
        asked = time.time()
        await async_wait_until(lambda: time.time() > asked + 1.1, 5, "a second later")
        same, _, _ = await get(raw, url, {**PLAIN, "If-None-Match": etag})
        async with raw.post(
            server.url + "/v1/alerts/a1/ack",
            json={"ack_by": "bob"},
            headers={"X-ExESDB-Admin-Token": ADMIN_TOKEN},
        ) as acked:
            assert acked.status == 200

        async def changed() -> bytes | None:
            status, _, body = await get(raw, url, {**PLAIN, "If-None-Match": etag})
            return body if status == 200 else None

        body = await async_wait_until(changed, 15, "the acknowledgement on the page")
        unknown = [
            (await get(raw, server.url + path, {**PLAIN, "If-None-Match": "*"}))[0]
            for path in ("/alerts/nope", "/alerts/nope?part=live")
        ]
    assert same == 304
    assert b"bob" in body
    assert unknown == [404, 404]
