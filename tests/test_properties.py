"""Properties of the ingest endpoint, checked with hypothesis against a real server.

Whatever bytes or headers arrive, the server answers a 4xx or a 202, never a 5xx, and keeps
running; any single-byte change to a signed body is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.messages import Message, format_timestamp
from tests.http.helpers import body_of, envelope
from tests.messages.helpers import CASES
from tests.support import ADMIN_TOKEN, TEST_SECRET, ThreadedBridge, http_get

KEYRING = Keyring.from_secrets(TEST_SECRET)
MAX_BODY = 4096
INGEST_ANSWERS = {202, 400, 401, 409, 413, 415}
PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedBridge]:
    """One bridge with ingest on, shared by the module's properties."""
    with ThreadedBridge(
        EXESDB_INGEST="true", EXESDB_MAX_BODY_BYTES=str(MAX_BODY), EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    ) as running:
        yield running


def _signature(body: bytes) -> str:
    return KEYRING.sign_header(body, int(time.time()))


content_types = st.sampled_from(
    ["application/json", "application/x-ndjson", "text/plain", "application/json; charset=utf-8"]
)
# Header values as raw bytes: anything but CR, LF and NUL (which HTTP itself forbids).
header_bytes = st.binary(max_size=200).map(
    lambda raw: bytes(b for b in raw if b not in (0, 10, 13))
)


@PROPERTY_SETTINGS
@given(
    body=st.binary(max_size=MAX_BODY + 1024),
    content_type=content_types,
    sign=st.booleans(),
)
def test_arbitrary_bytes_never_produce_a_5xx(
    server: ThreadedBridge, body: bytes, content_type: str, sign: bool
) -> None:
    """Any body, signed or not, gets one of ingest's documented answers, never a 5xx; a 400
    names a field."""
    headers: dict[str, str | bytes] = {"Content-Type": content_type}
    if sign:  # signed bodies get past the signature check into the parser
        headers[SIGNATURE_HEADER] = _signature(body)
    _assert_documented(*server.post_answer(body, headers))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@PROPERTY_SETTINGS
@given(
    changes=st.dictionaries(
        st.sampled_from(["v", "id", "instance", "topic", "tag", "node", "ts", "payload", "x"]),
        json_like,
        max_size=3,
    ),
    ndjson=st.booleans(),
)
def test_arbitrary_signed_envelopes_never_produce_a_5xx(
    server: ThreadedBridge, changes: dict[str, object], ndjson: bool
) -> None:
    """Signed envelopes with arbitrary JSON in any field are answered 202 or 4xx, never 5xx; a
    400 names a field."""
    body = body_of(envelope(**changes))
    if ndjson:
        body = body + b"\n" + body_of(envelope())
    content_type = "application/x-ndjson" if ndjson else "application/json"
    headers: dict[str, str | bytes] = {
        "Content-Type": content_type,
        SIGNATURE_HEADER: _signature(body),
    }
    _assert_documented(*server.post_answer(body, headers))


def _assert_documented(status: int, answer: bytes) -> None:
    """``status`` is one of ingest's answers, and a 400 names a field (``body``, ``line N`` or
    the envelope's), as docs/http-api.md says every 400 does."""
    assert status in INGEST_ANSWERS
    if status == 400:
        assert json.loads(answer).get("field"), answer


@PROPERTY_SETTINGS
@example(signature=b"t=\xc2\xb2,v1=" + b"a" * 64, content_type=b"application/json", extra={})
@example(signature=b"t=1,v1=\xff" * 8, content_type=b"\xff\xfe", extra={})
@given(
    signature=header_bytes,
    content_type=header_bytes,
    extra=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20).map(
            lambda name: "X-" + name
        ),
        header_bytes,
        max_size=3,
    ),
)
def test_arbitrary_headers_never_produce_a_5xx(
    server: ThreadedBridge, signature: bytes, content_type: bytes, extra: dict[str, bytes]
) -> None:
    """Any signature and content-type header bytes get a 4xx or a 202, never a 5xx."""
    headers: dict[str, str | bytes] = {
        "Content-Type": content_type,
        SIGNATURE_HEADER: signature,
        **extra,
    }
    status = server.post(body_of(envelope()), headers)
    assert status < 500


@PROPERTY_SETTINGS
@example(authorization=b"Bearer \xff\xfe")
@given(authorization=header_bytes)
def test_arbitrary_authorization_headers_never_produce_a_5xx(
    server: ThreadedBridge, authorization: bytes
) -> None:
    """Any Authorization bytes on an admin endpoint get 401 (or the parser's 400), never 5xx."""
    status = server.post(
        b'{"enabled": true}',
        {"Content-Type": "application/json", "Authorization": authorization},
        path="/v1/integration",
    )
    assert status in (400, 401)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_single_byte_change_to_a_signed_body_is_refused(
    server: ThreadedBridge, data: st.DataObject
) -> None:
    """Changing one byte of a signed body makes ingest refuse it (401 or 400, never 202)."""
    body = body_of(envelope())
    header = _signature(body)
    position = data.draw(st.integers(0, len(body) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda byte: byte != body[position]))
    tampered = bytearray(body)
    tampered[position] = value
    status = server.post(
        bytes(tampered), {"Content-Type": "application/json", SIGNATURE_HEADER: header}
    )
    assert status in (400, 401)


@settings(max_examples=500, deadline=None)
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_change_breaks_a_frame_signature(body: bytes, data: st.DataObject) -> None:
    """On the bus, a frame with any one byte changed no longer verifies."""
    signature = KEYRING.sign(body)
    position = data.draw(st.integers(0, len(body) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda byte: byte != body[position]))
    tampered = bytearray(body)
    tampered[position] = value
    assert KEYRING.verify(body, signature)
    assert not KEYRING.verify(bytes(tampered), signature)


@PROPERTY_SETTINGS
@given(
    models=st.lists(st.sampled_from(list(CASES)), min_size=1, max_size=6),
    shapes=st.lists(st.sampled_from(["minimal", "full"]), min_size=8, max_size=8),
)
def test_signed_batches_of_any_types_and_shapes_are_accepted(
    server: ThreadedBridge, models: list[type[Message]], shapes: list[str]
) -> None:
    """A signed batch of valid envelopes of any types, minimal or complete, is accepted whole."""
    now = format_timestamp(datetime.now(UTC))
    lines = []
    for model, shape in zip(models, shapes, strict=False):
        payload = dict(getattr(CASES[model], shape))
        if "timestamp" in payload:
            payload["timestamp"] = now
        lines.append(
            envelope(instance=model.INSTANCE, tag=model.TAG, topic=model.TAG, payload=payload)
        )
    body = body_of(*lines)
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/x-ndjson",
        SIGNATURE_HEADER: _signature(body),
    }
    assert server.post(body, headers) == 202


def test_the_server_survived_the_properties(server: ThreadedBridge) -> None:
    """After every property above, the server still runs and answers /healthz."""
    assert server.alive()
    body = body_of(envelope())
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: _signature(body),
    }
    assert server.post(body, headers) == 202
    assert json.loads(http_get(f"http://{server.host}:{server.port}/readyz")[1])["ready"]
