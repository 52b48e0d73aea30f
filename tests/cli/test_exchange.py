"""One request to a running bridge (``bridge.cli.exchange``): a server that never answers, is no
bridge, or whose certificate is not trusted, told without a traceback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import client
from tests.cli.helpers import ALERT_FIELDS, Bridges, cli
from tests.client_servers import (
    aiohttp_answering,
    answering,
    answering_with,
    endless_event,
    endless_page,
    events,
    flood,
)
from tests.support import ADMIN_TOKEN, DAMAGED_CA_NAMES, TEST_SECRET, damaged_ca_files


@pytest.mark.parametrize("command", [["alerts", "list"], ["tail"]], ids=" ".join)
def test_a_port_that_never_answers_is_told_after_the_timeout_without_a_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port that takes the connection and never answers (a bridge stuck, another program)
    ends the command after its timeout (10 s, 1 s here to keep the test short) with one line
    saying so, exit 1: not a traceback, and not a tail following in silence a stream that never
    opens."""
    monkeypatch.setattr(client, "TIMEOUT", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes each connection; nothing ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        completed = cli(*command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: the bridge at {url} did not answer within 1 s: it is stuck or"
        " overloaded, or another program holds that port (from --url)\n"
    )


def test_a_plain_http_answer_told_as_openssl_3_2_words_it_is_named_too() -> None:
    """OpenSSL 3.2 and later (Debian 13's) word a plain-http answer to the handshake as a
    "record layer failure": the commands say the bridge may serve plain http then too, not to
    trust a CA (this machine's OpenSSL, 3.0, says 'wrong version number')."""
    from bridge.cli.exchange import Unreachable

    failed = Unreachable("[SSL] record layer failure (_ssl.c:1000)", tls=True)
    said = client.Target("https://127.0.0.1:9570").unreachable(failed)
    assert said.startswith("TLS with https://127.0.0.1:9570 failed: [SSL] record layer failure")
    assert "the bridge may serve plain http" in said


def test_a_certificate_out_of_its_dates_is_told_to_be_renewed() -> None:
    """A certificate OpenSSL finds expired (the web config's own, pinned, or one a CA signed) is
    told to be renewed, not to be another certificate than the web config's, nor to want
    --cacert (OpenSSL 3.0's words, as a pinned context says them of an expired certificate)."""
    from bridge.cli.exchange import Unreachable

    reason = (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
        " (_ssl.c:1006)"
    )
    for pinned in (True, False):
        target = client.Target("https://127.0.0.1:9570", pinned=pinned)
        assert target.unreachable(Unreachable(reason, tls=True)) == (
            f"TLS with https://127.0.0.1:9570 failed: {reason} (its certificate is out of its"
            " dates: renew it, or set this machine's clock right; trusting another CA would not"
            " help)"
        )


def test_a_refusal_names_what_was_asked_and_plain_http_is_named_when_https_was_tried(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A --url with a path the bridge does not serve: exit 1 naming the URL asked and the status
    (not '404 404: Not Found') and the URL without that path; https:// against a plain-http
    bridge says it may serve http."""
    bridge = bridges(tmp_path)
    nested = cli("alerts", "list", "--url", bridge.url + "/api", EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert nested.returncode == 1
    assert nested.stderr == (
        f"exesdb-bridge: {bridge.url}/…/v1/alerts answered 404: nothing is served at this path;"
        " did you mean /v1/alerts? (not_found); the URL given has a path, and the bridge's own"
        f" paths go after it: a bridge served at its root is {bridge.url} (--url, EXESDB_URL)\n"
    )
    https = bridge.url.replace("http://", "https://")
    tls = cli("alerts", "list", "--url", https, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert tls.returncode == 1
    assert tls.stderr.startswith(f"exesdb-bridge: TLS with {https} failed: ")
    assert "the bridge may serve plain http" in tls.stderr


@pytest.fixture(params=[200, 404])
def not_a_bridge(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The URL of a real HTTP server on loopback that answers every request with a page, and
    the status it answers with (200, or a 404 page as a proxy or another service gives)."""
    status: int = request.param

    class Page(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html>some other service</html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    # shutdown() returns once the loop next looks, every poll_interval (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", status
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["alerts", "list"], "/v1/alerts"),
        (["alerts", "ack", "a1", "--by", "alice"], "/v1/alerts/a1/ack"),
        (["tail"], "/v1/stream"),
        (["publish", "system_alert", *ALERT_FIELDS], "/v1/messages"),
    ],
)
def test_a_server_that_is_no_bridge_is_named_without_a_traceback(
    not_a_bridge: tuple[str, int], command: list[str], path: str
) -> None:
    """A --url reaching another HTTP server that answers with a page (200 or 404): exit 1 with
    one line on stderr naming the URL and the status and asking whether a bridge is there;
    never the page itself, a traceback, nor "the bridge closed the stream"."""
    url, status = not_a_bridge
    completed = cli(
        *command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert f"exesdb-bridge: {url}/…" not in completed.stderr  # the path is ours, not its
    assert completed.stderr.startswith(f"exesdb-bridge: {url}{path} answered {status} but not")
    assert "is a bridge there?" in completed.stderr
    assert "<html" not in completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "data",
    [b"<p>a page</p>", b"{}", b"[1]", b"\xff\xfe", b"[" * 100_000],
    ids=["not-json", "no-envelope", "not-an-object", "not-utf-8", "nested-past-the-parser"],
)
def test_tail_on_another_program_s_event_stream_says_so_without_a_traceback(data: bytes) -> None:
    """An event stream (200, text/event-stream) whose data is no envelope the bridge sends (not
    JSON, not UTF-8, nested past the parser's depth, no object with an envelope's fields): exit
    1 with one line asking whether a bridge is there, not a traceback."""
    with answering(events(b"data: " + data + b"\n\n")) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {server.url}/v1/stream answered 200 but not with the bridge's messages:"
        " is a bridge there? (from --url)\n"
    )


def test_tail_reads_no_more_than_a_mebibyte_of_a_refusal_without_end() -> None:
    """A server answering the stream with a page that goes on without end (a 404 here) is told
    from the first MiB of it, as another server's page, and no more is read: read whole, it
    was held in memory as fast as it came (2.3 GB in 6 s) and tail never ended."""
    sent: list[int] = []
    with answering(endless_page(sent)) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"exesdb-bridge: {server.url}/v1/stream answered 404 but")
    [count] = sent
    assert count < 32 << 20, f"{count >> 20} MiB sent"


def test_alerts_list_reads_no_more_of_an_endless_answer_than_the_most_of_one() -> None:
    """A server answering ``alerts list`` with a 200 that goes on (faster than a bridge could)
    ends it in one line naming the most one answer may hold, and no more is read: read until
    the deadline, it took 4.4 GB in 10 s, then said the bridge did not answer."""
    sent: list[int] = []
    with aiohttp_answering(flood(sent, client.MOST_ANSWER + (32 << 20))) as url:
        completed = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: the answer from {url} held more than 64 MiB, the most a command reads of"
        " one answer: the rest was left unread: is a bridge there? (from --url)\n"
    )
    [count] = sent
    assert count < client.MOST_ANSWER + (16 << 20), f"{count >> 20} MiB sent"


@pytest.mark.parametrize(
    "body",
    [
        '{"alerts": "x", "alert": "x"}',
        '{"alerts": [1], "alert": 1}',
        '{"alerts": [{"alert_id": 1}], "alert": {"state": "firing"}}',
        '{"alerts": [{"alert_id": "a", "labels": {}}], "alert": []}',
    ],
)
@pytest.mark.parametrize("command", [["list"], ["ack", "a1", "--by", "alice"]], ids=["list", "ack"])
def test_alerts_from_json_not_shaped_as_the_bridge_s_are_told_not_a_traceback(
    body: str, command: list[str]
) -> None:
    """Another server's JSON holding ``alerts`` or ``alert`` but not shaped as the bridge's
    (a text, numbers, alerts without their fields) ends ``alerts list`` and ``alerts ack`` in
    one line asking whether a bridge is there, exit 1: it ended them in a traceback."""
    with aiohttp_answering(answering_with(200, body.encode())) as url:
        completed = cli("alerts", *command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    path = "/v1/alerts" if command == ["list"] else "/v1/alerts/a1/ack"
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {url}{path} answered 200 but not with its alerts as JSON: is a bridge"
        " there? (from --url)\n"
    )


def test_a_refusal_s_control_characters_are_shown_as_escapes_not_sent_to_the_terminal() -> None:
    """A refusal in the bridge's shape whose words hold a line break or an escape sequence (a
    hostile server's: clearing the screen, colouring what follows) is told on one line, each
    such character as its escape: they went to the terminal as they came."""
    refusal = {"error": "bad\x1b[31m", "detail": "one\ntwo \x1b[2J", "field": "f\x07"}
    with aiohttp_answering(answering_with(400, json.dumps(refusal).encode())) as url:
        completed = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: {url}/v1/alerts answered 400: one\\u000atwo \\u001b[2J"
        " (bad\\u001b[31m, field f\\u0007)\n"
    )


def test_tail_reads_no_more_of_a_line_without_end_than_the_longest_a_bridge_sends() -> None:
    """A stream whose line goes on without end is told past 512 MiB (twice the largest
    message a bridge takes) as no bridge's, exit 1, and no more of it is read: held whole as
    it came, it took 1.2 GB in 10 s and tail never ended."""
    sent: list[int] = []
    with answering(endless_event(sent)) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {server.url}/v1/stream answered 200 but not with lines of 512 MiB at"
        " most: is a bridge there? (from --url)\n"
    )
    [count] = sent
    # Past what tail read, the kernel holds what the server sent until tail's exit closes the
    # connection: tail's receive buffer (tcp_rmem's maximum, 32 MiB on some hosts, autotuned up
    # to it while tail reads) and the server's send buffer. 1.2 GB would be the line read on.
    assert count < (512 << 20) + _kernel_buffers_most() + (4 << 20), f"{count >> 20} MiB sent"


def _kernel_buffers_most() -> int:
    """The most a TCP connection's kernel buffers hold: the receiver's and the sender's
    (the maxima of tcp_rmem and tcp_wmem)."""
    return sum(
        int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        for name in ("tcp_rmem", "tcp_wmem")
    )


def test_tail_shows_a_server_s_control_characters_as_escapes() -> None:
    """An event whose envelope's fields hold an escape sequence or a line break (another
    server's: a bridge's hold none) is printed on one line, each as its escape: they went to
    the terminal as they came."""
    envelope: dict[str, object] = {field: "x" for field in ("ts", "instance", "topic", "tag")}
    envelope |= {"node": "n\x1b[2J\nforged", "payload": {"text": "\x1b[31m"}}
    data = json.dumps(envelope).encode()
    with answering(events(b"data: " + data + b"\n\n")) as server:
        completed = cli("tail", "--count", "1", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == 'x x x x n\\u001b[2J\\u000aforged {"text":"\\u001b[31m"}\n'


def test_tail_takes_a_message_of_megabytes_in_time_growing_with_its_size() -> None:
    """A message of 48 MiB is printed within seconds: each read of the stream added to all the
    line had so far took time growing with the square of its size (64 MiB: 54 s)."""
    envelope: dict[str, object] = {
        field: "x" for field in ("ts", "instance", "topic", "tag", "node")
    }
    envelope["payload"] = {"text": "x" * (48 << 20)}
    data = json.dumps(envelope).encode()
    with answering(events(b"event: log_entry\ndata: " + data + b"\n\n")) as server:
        began = time.monotonic()
        completed = cli("tail", "--count", "1", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
        took = time.monotonic() - began
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout) == (48 << 20) + len('x x x x x {"text":""}\n')
    assert took < 10, f"took {took:.1f} s"


def test_an_untrusted_certificate_is_told_by_openssl_s_reason(untrusted_tls_port: int) -> None:
    """A bridge whose certificate no trusted CA signed: OpenSSL's reason as it reads and the hint,
    not aiohttp's text around the error's args tuple (``ssl:True [SSLCertVerificationError: (1,
    '[SSL: …')]``)."""
    url = f"https://127.0.0.1:{untrusted_tls_port}"
    refused = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"exesdb-bridge: TLS with {url} failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: "
    )
    assert refused.stderr.endswith(" (--cacert names a CA to trust)\n")
    assert "(1, '" not in refused.stderr


def test_a_certificate_for_another_host_says_to_ask_by_its_name_not_for_a_ca(
    tls_port_for_another_name: tuple[int, Path],
) -> None:
    """A certificate the --cacert CA verifies, for another host than the URL's: the hint says to
    ask by a name it holds, not to trust a CA (trusted already)."""
    port, ca_file = tls_port_for_another_name
    url = f"https://127.0.0.1:{port}"
    refused = cli(
        "alerts", "list", "--url", url, "--cacert", str(ca_file), EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"exesdb-bridge: TLS with {url} failed: ")
    assert "IP address mismatch" in refused.stderr
    assert refused.stderr.endswith(
        " (its certificate is not for the host asked: give --url (or EXESDB_URL) a host name or"
        " address its certificate holds)\n"
    )


@pytest.mark.parametrize(
    ("cacert", "problem"),
    [
        ("missing.pem", "No such file or directory"),
        (".", "Is a directory"),
        ("notes.txt", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
    ],
)
def test_a_cacert_that_will_not_load_is_one_line_naming_the_file(
    cacert: str, problem: str, tmp_path: Path
) -> None:
    """A --cacert missing, a folder or holding no certificate exits 2 in one line naming the
    file and why, as examples/sign.py and sign.sh say it (not OpenSSL's code and source line)."""
    (tmp_path / "notes.txt").write_text("no certificate here\n")
    refused = cli(
        "alerts", "list", "--cacert", cacert, cwd=tmp_path, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert refused.returncode == 2
    assert refused.stderr == f"exesdb-bridge: --cacert {cacert}: {problem}\n"


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_cacert_holding_a_damaged_certificate_is_told_as_damaged(
    damaged: str, tmp_path: Path
) -> None:
    """A --cacert whose PEM armour holds a certificate OpenSSL cannot read (its base64 or its
    DER damaged) exits 2 naming the line of that certificate and its damage (or, each reading
    alone, that another block is at fault), not as a file holding no PEM certificate."""
    cacert, said = damaged_ca_files(tmp_path)[damaged]
    refused = cli("alerts", "list", "--cacert", cacert, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert refused.returncode == 2
    assert refused.stderr == f"exesdb-bridge: --cacert {cacert}: {said}\n"
