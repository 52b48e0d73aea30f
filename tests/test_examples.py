"""Every program in examples/ runs as written, as a real process, against a real bridge on a
port that is not the default one."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pytest
import trustme

from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_client_tls import secured
from tests.support import (
    DAMAGED_CA_NAMES,
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    FifoReleaser,
    damaged_ca_files,
    free_port,
    http_get,
    require_binary,
    run_command,
    run_without_terminal,
    withhold,
)

__all__ = ["secured", "webhook_receiver"]  # the fixtures, imported for the tests below

# One pytest-xdist worker runs the module: its bridges (module fixtures) start once.
pytestmark = pytest.mark.xdist_group("examples-bridges")

EXAMPLES = ROOT / "examples"
HEALTHY = '{"status": "healthy"}'


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return run_command(command, env)


@pytest.fixture(scope="module")
def ingesting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """A bridge with ingest on, listening on every address at a free port, shared by the
    module's tests (each reads the counts it checks before and after); its own health is
    broadcast hourly, so not while they run: only the signers' messages move the counts."""
    folder = tmp_path_factory.mktemp("ingesting")
    process = BridgeProcess(
        state_dir=folder / "state",
        EXESDB_INGEST="true",
        EXESDB_HEALTH_BROADCAST_INTERVAL=str(3_600_000),
    )
    process.env["EXESDB_HTTP_ADDR"] = f"0.0.0.0:{process.port}"
    process.start(folder)
    try:
        yield process
    finally:
        process.stop()


def _health_messages(process: BridgeProcess) -> float:
    text = http_get(process.url + "/metrics", process.headers, context=process.context)[1].decode()
    found = re.search(
        r'^exesdb_bus_published_total\{pubsub="ex_esdb_health",tag="node_health_updated"\} (\S+)',
        text,
        re.M,
    )
    return float(found.group(1)) if found else 0.0


def _signer(name: str) -> list[str]:
    if name == "sign.sh":
        require_binary("openssl")
        require_binary("curl")
        return ["bash", str(EXAMPLES / name)]
    return [sys.executable, str(EXAMPLES / name)]


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_posts_a_message_the_bridge_accepts(name: str, ingesting: BridgeProcess) -> None:
    """The signer finds the bridge through EXESDB_HTTP_ADDR, gets 202 and the message is on
    the bus; a payload the type refuses gets the bridge's 400 and exit 1."""
    env = {"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_HTTP_ADDR": f"0.0.0.0:{ingesting.port}"}
    before = _health_messages(ingesting)
    accepted = _run([*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY], **env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.strip() == '202 {"accepted": 1}'
    assert _health_messages(ingesting) == before + 1
    refused = _run(
        [*_signer(name), "ex_esdb_health", "node_health_updated", '{"status": "fine"}'], **env
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith('400 {"error": "invalid_payload"')


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_prints_every_field_the_bridge_finds_missing(
    name: str, ingesting: BridgeProcess
) -> None:
    """A performance metric sent without value, unit and component is answered naming all
    three, which the signer prints with the status: one resend mends them."""
    env = {"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_HTTP_ADDR": f"0.0.0.0:{ingesting.port}"}
    payload = '{"metric_name": "queue_depth"}'
    refused = _run([*_signer(name), "ex_esdb_metrics", "performance_metric", payload], **env)
    assert refused.returncode == 1
    assert refused.stdout.startswith('400 {"error": "invalid_payload"')
    assert (
        '"detail": "payload.value: Field required; payload.unit: Field required;'
        ' payload.component: Field required"'
    ) in refused.stdout


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
@pytest.mark.parametrize("asked", [["--help"], ["-h"], ["--timeout", "3", "--help"]])
def test_a_signer_asked_for_help_prints_its_usage_and_exits_0(name: str, asked: list[str]) -> None:
    """``--help`` (or ``-h``, after other options too) prints the signer's usage on stdout and
    exits 0, sending nothing: a reader asking for help is not answered with a usage error."""
    helped = _run([*_signer(name), *asked])
    assert (helped.returncode, helped.stderr) == (0, ""), helped.stderr
    assert helped.stdout.startswith("usage: ")
    assert re.search(r"\binstance tag payload", helped.stdout, re.I), helped.stdout


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--bogus"], "sign.sh: --bogus: not an option of "),
        (["--usr=ops:s3cret"], "sign.sh: --usr=…: not an option of "),
        (["--user=ops:s3cret"], "sign.sh: --user=…: give its value after a space, --user VALUE"),
        (["--topic", "a:b"], "sign.sh: TOPIC given twice: --topic, or after PAYLOAD_JSON"),
    ],
)
def test_the_shell_signer_names_what_is_wrong_with_its_usage(given: list[str], said: str) -> None:
    """sign.sh's bad usage (exit 2) says what is wrong on a line before its usage, as sign.py's
    argparse does, never a value given in an option with = (a password, in --user=…)."""
    message = ["ex_esdb_health", "node_health_updated", HEALTHY, "c:d"]
    refused = _run([*_signer("sign.sh"), *given, *message], SECRET_KEY_BASE=TEST_SECRET)
    assert refused.returncode == 2, refused.stderr
    first, usage = refused.stderr.splitlines()
    assert said in first, first
    assert usage.startswith("usage: ")
    assert "s3cret" not in refused.stderr


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["-uops:s3cret"], "-u…"),  # curl's -u, its value attached
        (["--usr=ops:s3cret"], "--usr=…"),
        (["--userops:s3cret"], "--user…"),  # its own option, the value glued on as -u's
        (["--usrops:s3cret"], "--usrops…"),  # cut where no option's name goes on
        (["-uops:s3cret=x"], "-u…"),  # an = in the value, not after a name
        (["--usrops:s3cret=x"], "--usrops…"),
    ],
)
def test_a_signer_refusing_an_option_shows_no_value_given_in_it(
    name: str, given: list[str], said: str
) -> None:
    """An option a signer does not take is refused (exit 2) naming it without a value given in
    it, which may be a password (curl's -uUSER:PASSWORD, --usr=USER:PASSWORD, or glued onto a
    long option's name: --userUSER:PASSWORD)."""
    message = ["ex_esdb_health", "node_health_updated", HEALTHY]
    refused = _run([*_signer(name), *given, *message], SECRET_KEY_BASE=TEST_SECRET)
    assert refused.returncode == 2, refused.stderr
    assert said in refused.stderr, refused.stderr
    assert "s3cret" not in refused.stderr


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ([], "sign.sh: the following arguments are required: INSTANCE, TAG, PAYLOAD_JSON"),
        (["ex_esdb_health"], "sign.sh: the following arguments are required: TAG, PAYLOAD_JSON"),
        (
            ["ex_esdb_health", "node_health_updated", HEALTHY, "--topic", "c:d"],
            "sign.sh: --topic: options go before INSTANCE",
        ),
        (
            ["ex_esdb_health", "node_health_updated", HEALTHY, "--user=ops:s3cret"],
            "sign.sh: --user=…: options go before INSTANCE",
        ),
        (
            ["ex_esdb_health", "node_health_updated", HEALTHY, "--userops:s3cret"],
            "sign.sh: --user…: options go before INSTANCE",
        ),
        (
            ["ex_esdb_health", "node_health_updated", HEALTHY, "c:d", "more"],
            "sign.sh: 5 arguments after the options, at most 4: INSTANCE TAG PAYLOAD_JSON [TOPIC]",
        ),
    ],
    ids=[
        "none",
        "instance-alone",
        "option-after",
        "secret-option-after",
        "secret-glued-after",
        "too-many",
    ],
)
def test_the_shell_signer_names_arguments_missing_or_out_of_place(
    given: list[str], said: str
) -> None:
    """sign.sh given too few arguments names those missing, as sign.py's argparse does, and an
    option after PAYLOAD_JSON (sign.py's own usage puts --topic there) or one argument too many
    says so, exit 2, nothing sent and no value given in an option shown (with =, or glued on)."""
    refused = _run([*_signer("sign.sh"), *given], SECRET_KEY_BASE=TEST_SECRET)
    assert refused.returncode == 2, refused.stderr
    first, usage = refused.stderr.splitlines()
    assert said in first, first
    assert usage.startswith("usage: ")
    assert "s3cret" not in refused.stderr


@pytest.mark.parametrize(
    ("name", "option", "after"),
    [
        ("sign.sh", [], ["cluster:health"]),
        ("sign.sh", ["--topic", "cluster:health"], []),  # as sign.py and publish take it
        ("sign.py", ["--topic", "cluster:health"], []),
    ],
)
def test_a_signer_takes_exesdb_url_and_a_topic(
    name: str, option: list[str], after: list[str], ingesting: BridgeProcess
) -> None:
    """With EXESDB_URL set the signer asks there, taking a topic by --topic (sign.sh also as
    TOPIC after the payload); a wrong key is the bridge's 401."""
    args = ["ex_esdb_health", "node_health_updated", HEALTHY]
    url = {"EXESDB_URL": ingesting.url}
    ok = _run([*_signer(name), *option, *args, *after], SECRET_KEY_BASE=TEST_SECRET, **url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = _run([*_signer(name), *args], SECRET_KEY_BASE="x" * 40, **url)
    assert wrong.returncode == 1
    assert wrong.stdout.startswith('401 {"error": "invalid_signature"')


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_sends_a_node_name_with_quotes_and_a_backslash_as_given(
    name: str, ingesting: BridgeProcess
) -> None:
    """An EXESDB_NODE holding quotes and a backslash, which a node name may hold, is sent as
    given (sign.sh escapes it as JSON, as sign.py's json.dumps does): accepted, the series it
    makes labelled with it."""
    node = f'{name} "7"\\b'
    env = {"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_URL": ingesting.url, "EXESDB_NODE": node}
    payload = '{"metric_name": "q", "value": 1, "unit": "m", "component": "c"}'
    accepted = _run([*_signer(name), "ex_esdb_metrics", "performance_metric", payload], **env)
    assert accepted.stdout.strip() == '202 {"accepted": 1}', accepted.stdout + accepted.stderr
    labelled = node.replace("\\", "\\\\").replace('"', '\\"')  # as the exposition escapes it
    metrics = http_get(ingesting.url + "/metrics", ingesting.headers)[1].decode()
    assert f'exesdb_performance_value{{node="{labelled}",component="c"' in metrics


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_takes_a_blank_variable_as_unset_as_publish_does(
    name: str, ingesting: BridgeProcess
) -> None:
    """EXESDB_URL, EXESDB_WEB_CONFIG_FILE and EXESDB_NODE empty or of blanks only (docker
    compose's ${X:-}, a stray space in an env file) are unset, as the bridge and publish read
    them: the message goes to EXESDB_HTTP_ADDR's bridge under the host's name, where EXESDB_URL
    was refused as no URL and the node sent as a blank; a blank SECRET_KEY_BASE is no key, exit
    2 before anything is sent, where the message went out signed with it."""
    component = f"blank-{name}"
    payload = f'{{"metric_name": "q", "value": 1, "unit": "m", "component": "{component}"}}'
    message = [*_signer(name), "ex_esdb_metrics", "performance_metric", payload]
    blanks = {"EXESDB_URL": "  ", "EXESDB_WEB_CONFIG_FILE": "", "EXESDB_NODE": " "}
    address = {"EXESDB_HTTP_ADDR": f"127.0.0.1:{ingesting.port}"}
    accepted = _run(message, SECRET_KEY_BASE=TEST_SECRET, **address, **blanks)
    assert accepted.stdout.strip() == '202 {"accepted": 1}', accepted.stdout + accepted.stderr
    metrics = http_get(ingesting.url + "/metrics", ingesting.headers)[1].decode()
    host = socket.gethostname()
    assert f'exesdb_performance_value{{node="{host}",component="{component}"' in metrics
    unkeyed = _run(message, SECRET_KEY_BASE=" ", **address)
    assert unkeyed.returncode == 2, unkeyed.stdout + unkeyed.stderr
    assert unkeyed.stdout == ""
    assert "set SECRET_KEY_BASE to the bridge's key" in unkeyed.stderr


@pytest.mark.parametrize(
    ("given", "node", "refused", "field"),
    [
        (['ex_esdb_health"', "node_health_updated", HEALTHY], "n1", "unknown_instance", "instance"),
        (["ex_esdb_health", "node_health_updated\\", HEALTHY, "t"], "n1", "unknown_tag", "tag"),
        (["ex_esdb_health", "node\thealth_updated", HEALTHY, "t"], "n1", "unknown_tag", "tag"),
        # A topic that would close its string and add a node of its own.
        (
            ["ex_esdb_health", "node_health_updated", HEALTHY, 'x","node":"forged'],
            "n1",
            "malformed",
            "topic",
        ),
        (["ex_esdb_health", "node_health_updated", HEALTHY], "n1\nn2", "malformed", "node"),
    ],
    ids=["instance-quote", "tag-backslash", "tag-tab", "topic-injected", "node-newline"],
)
def test_the_shell_signer_sends_each_envelope_field_as_the_python_one_does(
    given: list[str], node: str, refused: str, field: str, ingesting: BridgeProcess
) -> None:
    """An INSTANCE, TAG, TOPIC or EXESDB_NODE holding a quote, a backslash or a control
    character is sent by sign.sh as sign.py sends it, escaped as JSON: the bridge's answer is
    the same, refusing the field it names, never a body that is no JSON nor an envelope the
    text changed."""
    env = {"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_URL": ingesting.url, "EXESDB_NODE": node}
    topic = given[3:]
    shell = _run([*_signer("sign.sh"), *given], **env)
    python = _run([*_signer("sign.py"), *given[:3], *(["--topic", *topic] if topic else [])], **env)
    assert shell.returncode == python.returncode == 1, shell.stdout + shell.stderr
    assert shell.stdout.startswith(f'400 {{"error": "{refused}"'), shell.stdout
    assert f'"field": "{field}"' in shell.stdout
    assert shell.stdout == python.stdout


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_refuses_an_address_the_bridge_would_refuse(
    name: str, ingesting: BridgeProcess
) -> None:
    """A port alone, a URL or port 0 in EXESDB_HTTP_ADDR is refused as bad usage (exit 2)
    naming the variable, as the bridge refuses it, and nothing is sent: sign.py read the port
    alone as loopback, sign.sh as a host named by the number, and each a URL as a host."""
    before = _health_messages(ingesting)
    for address in (str(ingesting.port), f"http://127.0.0.1:{ingesting.port}", "127.0.0.1:0"):
        completed = _run(
            [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_HTTP_ADDR=address,
        )
        assert completed.returncode == 2, address
        # After the program's name, as its other errors are (sign.py's: argparse's usage error).
        assert f"{name}: {'error: ' if name == 'sign.py' else ''}EXESDB_HTTP_ADDR: must be" in (
            completed.stderr
        )
        assert "EXESDB_HTTP_ADDR: must be host:port as the bridge listens on it, e.g." in (
            completed.stderr
        )
        assert f"(got '{address}'); a bridge's URL goes in EXESDB_URL" in completed.stderr
    assert _health_messages(ingesting) == before


_BRACKETS = "an IPv6 host in brackets; did you mean"
_NO_HOST = "the host an IP address ([::1] for IPv6) or a host name, e.g. 0.0.0.0:9570"


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("::1:9570", f"{_BRACKETS} '[::1]:9570'?"),
        (":::9570", f"{_BRACKETS} '[::]:9570'?"),
        ("::9570", _NO_HOST),
        ("a:b:9570", _NO_HOST),
    ],
)
def test_a_signer_refuses_a_host_with_a_colon_as_the_bridge_does(
    name: str, address: str, said: str
) -> None:
    """A host with a colon in EXESDB_HTTP_ADDR is bad usage (exit 2) in the bridge's own words,
    after the program's name: an IPv6 address without brackets told the address meant (the
    signers built http://::1:9570 from it), any other host not given brackets it cannot take."""
    completed = _run(
        [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=address,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        f"{name}: {'error: ' if name == 'sign.py' else ''}EXESDB_HTTP_ADDR: must be host:port,"
        f" {said}\n"
    )


# What a signer's refusal of a URL that is none ends with.
EXAMPLE: Final = ", e.g. http://127.0.0.1:9570"


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_refuses_an_exesdb_url_the_commands_would_refuse(name: str) -> None:
    """An EXESDB_URL that is no http(s) URL with a host is bad usage (exit 2) naming the
    variable, as `exesdb-bridge publish` refuses it, and the URL as it names one (its origin,
    the password redacted): sign.py raised urllib's traceback, sign.sh left curl to name only a
    host it could not resolve; one with a query or fragment, after which the path added would
    land, as the commands refuse it."""
    refused = {
        "notaurl": "EXESDB_URL: not a URL; allowed: an http:// or https:// URL with a host"
        f"{EXAMPLE}",
        "ftp://ops:hunter2@bridge.example/in?token=hunter2": (
            "EXESDB_URL: 'ftp://ops:<redacted>@bridge.example/…' is not an http:// or https://"
            f" URL with a host{EXAMPLE}"
        ),
        "http://ops:hunter2@": (
            "EXESDB_URL: 'http://ops:<redacted>@' is not an http:// or https:// URL with a host"
            f"{EXAMPLE}"
        ),
        "http://h:x": "EXESDB_URL: 'http://h:x' is not an http:// or https:// URL with a host"
        f"{EXAMPLE}",
        # The path added would go after the ? or #: the message posted to the status page.
        "http://127.0.0.1:9570/?x=1": "EXESDB_URL: has a query or fragment (? or #), after"
        " which the path added (/v1/messages) would land; allowed: the bridge's URL without them",
        "http://127.0.0.1:9570#top": "EXESDB_URL: has a query or fragment (? or #)",
    }
    for url, message in refused.items():
        completed = _run(
            [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_URL=url,
        )
        assert completed.returncode == 2, (url, completed.stderr)
        assert message in completed.stderr, url
        said = f"{name}: {'error: ' if name == 'sign.py' else ''}{message}"
        assert said in completed.stderr, url
        assert "hunter2" not in completed.stderr
        assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_gives_up_on_a_port_that_never_answers_after_its_timeout(name: str) -> None:
    """Against a port that takes the connection and never answers, a signer stops after its
    --timeout saying it timed out, exit 1, rather than waiting for good (curl waits for good
    unless told); a --timeout that is no positive number of seconds is bad usage (exit 2)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes each connection; nothing ever reads or answers
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        message = ["ex_esdb_health", "node_health_updated", HEALTHY]
        for timeout in ("0", "-1", "soon"):
            refused = _run(
                [*_signer(name), "--timeout", timeout, *message],
                SECRET_KEY_BASE=TEST_SECRET,
                EXESDB_HTTP_ADDR=address,
            )
            assert refused.returncode == 2, (timeout, refused.stderr)
            said = f"--timeout: not a positive number of seconds: '{timeout}'"
            assert said in refused.stderr, refused.stderr
        started = time.monotonic()
        completed = _run(
            [*_signer(name), "--timeout", "0.5", *message],
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_HTTP_ADDR=address,
        )
    assert completed.returncode == 1, completed.stderr
    assert "timed out" in completed.stderr.lower()
    # Its own timeout, not the default 10 s (headroom for a loaded host's start-up).
    assert time.monotonic() - started < 8


@pytest.mark.parametrize(
    ("payload", "message"),
    [("not json", "not JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_the_python_signer_refuses_a_payload_that_is_no_json_object(
    payload: str, message: str
) -> None:
    """sign.py refuses a payload that is not a JSON object as bad usage (exit 2)."""
    args = ["ex_esdb_health", "node_health_updated", payload]
    completed = _run([*_signer("sign.py"), *args], SECRET_KEY_BASE=TEST_SECRET)
    assert completed.returncode == 2
    assert f"argument payload: {message}" in completed.stderr


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        ("not json", "(Expecting value at its character 1)"),
        ('{"status": "healthy"', "(Expecting ',' delimiter at its character 22)"),
        ('{"status": }', "(Expecting value at its character 12)"),
    ],
)
def test_the_shell_signer_names_a_payload_that_is_no_json_by_its_own_position(
    payload: str, said: str, ingesting: BridgeProcess
) -> None:
    """sign.sh, which cannot parse JSON before sending, turns the bridge's 400 for a body that
    is no JSON from the payload on into bad usage (exit 2, as sign.py's), in one line naming the
    character of the payload given, not of the envelope the bridge counts from (char 182 for the
    first), which it does not print beside it."""
    completed = _run(
        [*_signer("sign.sh"), "ex_esdb_health", "node_health_updated", payload],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{ingesting.port}",
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.endswith(
        f"sign.sh: PAYLOAD_JSON is no JSON {said}: give one JSON object,"
        """ as '{"status": "healthy"}'\n"""
    )
    assert completed.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("sign.py", "sign.py: cannot reach the bridge at http://127.0.0.1:{port}: "),
        ("sign.sh", "sign.sh: no answer from the bridge at http://127.0.0.1:{port}, so nothing"),
    ],
)
@pytest.mark.parametrize("found", ["EXESDB_HTTP_ADDR", "EXESDB_URL"])
def test_a_signer_says_when_no_bridge_answers(name: str, said: str, found: str) -> None:
    """A signer with nothing listening at the address exits 1 (sign.sh too, not curl's own
    status) saying so, naming the bridge's URL it asked (a wrong port is seen at once), its
    password never, and the variables that say where the bridge is, without a traceback."""
    port = free_port()
    where = {"EXESDB_HTTP_ADDR": f"127.0.0.1:{port}"}
    if found == "EXESDB_URL":
        where = {"EXESDB_URL": f"http://alice:hunter2@127.0.0.1:{port}"}
    completed = _run(
        [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        **where,
    )
    assert completed.returncode == 1, completed.stderr
    assert said.format(port=port) in completed.stderr
    assert completed.stderr.endswith("(EXESDB_URL or EXESDB_HTTP_ADDR says where it is)\n")
    assert "hunter2" not in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
@pytest.mark.parametrize(
    ("cacert", "said"),
    [
        ("missing.pem", "No such file or directory"),
        ("key.pem", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
    ],
    ids=["missing", "no certificate"],
)
def test_a_signer_refuses_a_cacert_it_cannot_use_before_sending(
    name: str, cacert: str, said: str, tmp_path: Path
) -> None:
    """A --cacert FILE that does not exist or holds no PEM certificate is bad usage, exit 2
    naming it, before anything is sent (nothing listens at the address: trying would be exit
    1), as publish refuses it; sign.sh no longer leaves it to curl's 'no answer'."""
    (tmp_path / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    completed = _run(
        [*_signer(name), "--cacert", str(tmp_path / cacert), "x", "y", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
    )
    assert completed.returncode == 2, completed.stderr
    assert f"--cacert {tmp_path / cacert}: {said}\n" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_the_python_signer_tells_a_damaged_cacert_certificate_as_damaged(
    damaged: str, tmp_path: Path
) -> None:
    """A --cacert whose PEM armour holds a certificate OpenSSL cannot read is bad usage, exit 2,
    naming its line and damage as publish does (or, each reading alone, that another block is
    at fault), not as a file holding no PEM certificate."""
    cacert, said = damaged_ca_files(tmp_path)[damaged]
    completed = _run(
        [*_signer("sign.py"), "--cacert", cacert, "x", "y", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(f"sign.py: error: --cacert {cacert}: {said}\n")


def test_the_python_signer_asking_a_plain_http_bridge_over_https_says_so(
    ingesting: BridgeProcess,
) -> None:
    """sign.py sent over https to a bridge serving plain http (a shell's EXESDB_WEB_CONFIG_FILE
    or EXESDB_URL says TLS, the bridge runs without it) says the bridge may serve plain http, as
    the commands do, not to trust a CA with --cacert, which would not help."""
    completed = _run(
        [*_signer("sign.py"), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_URL=f"https://127.0.0.1:{ingesting.port}",
    )
    assert completed.returncode == 1, completed.stderr
    assert "the bridge may serve plain http: use http://" in completed.stderr
    assert "--cacert" not in completed.stderr


def test_the_python_signer_told_a_certificate_for_another_host_says_to_ask_by_its_name(
    tls_port_for_another_name: tuple[int, Path],
) -> None:
    """sign.py given the CA of a certificate for another host than EXESDB_URL's says to ask by
    a name the certificate holds, not to trust a CA with --cacert (trusted already)."""
    port, ca_file = tls_port_for_another_name
    completed = _run(
        [*_signer("sign.py"), "--cacert", str(ca_file), "ex_esdb_health", "node_health_updated",
         HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_URL=f"https://127.0.0.1:{port}",
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert "IP address mismatch" in completed.stderr
    assert completed.stderr.endswith(
        "; its certificate is not for the host asked: give EXESDB_URL a host name or address its"
        " certificate holds\n"
    )


@pytest.mark.parametrize("name", ["sign.py", "sign.sh"])
def test_a_signer_without_a_key_is_a_usage_error(name: str) -> None:
    """A signer with SECRET_KEY_BASE unset exits 2 (bad usage, as every other) saying to set it."""
    completed = _run([*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY])
    assert completed.returncode == 2, completed.stderr
    assert "set SECRET_KEY_BASE to the bridge's key" in completed.stderr


def test_the_python_signer_refuses_a_key_that_is_no_utf8_text() -> None:
    """sign.py given a SECRET_KEY_BASE holding bytes no UTF-8 character is made of (random
    bytes), which no bridge runs with, exits 2 saying so, not with a traceback."""
    completed = _run(
        [*_signer("sign.py"), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE="\udcff" + TEST_SECRET,  # the byte 0xff, as the environment holds it
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stderr.endswith(
        "sign.py: error: SECRET_KEY_BASE holds bytes that are not UTF-8 text: set it to the"
        " bridge's key\n"
    )


@pytest.mark.parametrize("closed", [False, True], ids=["empty stdin", "closed stdin"])
def test_the_python_signer_without_a_password_to_ask_for_is_a_usage_error(closed: bool) -> None:
    """sign.py --user USER with no terminal and an empty or closed stdin exits 2 saying to give
    USER:PASSWORD, its usage on a line of its own after getpass's prompt, without getpass's
    traceback or Python's warning about echo."""
    arguments = ["ex_esdb_health", "node_health_updated", HEALTHY, "--user", "ops"]
    completed = run_without_terminal(
        [*_signer("sign.py"), *arguments],
        {"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_URL": "http://127.0.0.1:9"},
        closed_stdin=closed,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "GetPassWarning" not in completed.stderr
    assert "password for ops: \nusage: sign.py" in completed.stderr
    assert completed.stderr.endswith(
        "error: --user ops: no password given, and none could be asked for (no terminal, and"
        " stdin ended): give it as --user ops:PASSWORD\n"
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
def test_a_signer_posts_over_https_with_a_ca_of_its_own_and_basic_auth(
    name: str, secured: tuple[BridgeProcess, Path]
) -> None:
    """Beside a bridge whose web config serves TLS (a private CA) and asks for basic auth, the
    signer finds its https address (EXESDB_WEB_CONFIG_FILE), trusts the CA with --cacert and
    sends --user, or a user:password@ in EXESDB_URL: 202, the message on the bus; without the
    CA or the password it fails, never sending in the clear."""
    process, ca = secured
    shell = {
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_HTTP_ADDR": process.env["EXESDB_HTTP_ADDR"],
        "EXESDB_WEB_CONFIG_FILE": process.env["EXESDB_WEB_CONFIG_FILE"],
    }
    message = ["ex_esdb_health", "node_health_updated", HEALTHY]
    trusted = ["--cacert", str(ca)]
    before = _health_messages(process)
    sent = _run([*_signer(name), *trusted, "--user", "alice:alice-pw", *message], **shell)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.strip() == '202 {"accepted": 1}'
    in_url = process.url.replace("https://", "https://alice:alice-pw@")
    sent = _run([*_signer(name), *trusted, *message], **shell, EXESDB_URL=in_url)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert _health_messages(process) == before + 2
    # At EXESDB_URL, not the address the web config's certificate is served at: the CA it is.
    untrusted = _run(
        [*_signer(name), "--user", "alice:alice-pw", *message], **shell, EXESDB_URL=process.url
    )
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr.lower()
    unauthorised = _run([*_signer(name), *trusted, *message], **shell)
    assert unauthorised.returncode == 1
    assert unauthorised.stdout.startswith("401 ")
    assert _health_messages(process) == before + 2


@pytest.mark.integration
@pytest.mark.parametrize("name", ["sign.sh", "sign.py"])
@pytest.mark.parametrize("written", ["cert_file", "cert"])
def test_a_signer_trusts_the_web_configs_own_certificate_at_the_bridges_address(
    name: str, written: str, secured: tuple[BridgeProcess, Path], tmp_path: Path
) -> None:
    """Found through EXESDB_HTTP_ADDR, a bridge whose web config serves TLS with a certificate
    no CA of the system's signed is asked trusting that file's own certificate alone (its
    cert_file's first, or its inline cert), as publish asks it: 202 without --cacert."""
    process, _ = secured
    web_config = Path(process.env["EXESDB_WEB_CONFIG_FILE"])
    if written == "cert":
        served = (web_config.parent / "server.pem").read_text()
        inline = "".join(f"    {line}\n" for line in served.splitlines())
        web_config = tmp_path / "web.yml"
        web_config.write_text(f"tls_server_config:\n  key_file: k.pem\n  cert: |\n{inline}")
    shell = {
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_HTTP_ADDR": process.env["EXESDB_HTTP_ADDR"],
        "EXESDB_WEB_CONFIG_FILE": str(web_config),
    }
    before = _health_messages(process)
    sent = _run(
        [*_signer(name), "--user", "alice:alice-pw", "ex_esdb_health", "node_health_updated",
         HEALTHY],
        **shell,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.strip() == '202 {"accepted": 1}'
    assert _health_messages(process) == before + 1


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            "sign.py",
            "it serves another certificate than EXESDB_WEB_CONFIG_FILE's, the one trusted here",
        ),
        ("sign.sh", "public key does not match pinned public key"),
    ],
)
def test_a_signer_refuses_a_bridge_serving_another_certificate_than_its_web_configs(
    name: str, said: str, secured: tuple[BridgeProcess, Path], tmp_path: Path
) -> None:
    """A bridge at EXESDB_HTTP_ADDR serving another certificate than the web config file's is
    not trusted, even one from the same CA: exit 1, saying so, nothing sent."""
    process, _ = secured
    other = tmp_path / "other.pem"
    trustme.CA().issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(other))
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {other}\n  key_file: k.pem\n")
    before = _health_messages(process)
    refused = _run(
        [*_signer(name), "--user", "alice:alice-pw", "ex_esdb_health", "node_health_updated",
         HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=process.env["EXESDB_HTTP_ADDR"],
        EXESDB_WEB_CONFIG_FILE=str(web_config),
    )  # fmt: skip
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert said in refused.stderr
    assert _health_messages(process) == before


def test_the_python_signer_told_its_web_configs_certificate_expired_says_to_renew_it(
    expired_tls_port: tuple[int, Path], tmp_path: Path
) -> None:
    """sign.py asking the bridge's address, whose web config's own certificate (trusted alone)
    is out of its dates, says to renew it, not that another certificate is served."""
    port, cert = expired_tls_port
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: k.pem\n")
    completed = _run(
        [*_signer("sign.py"), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_WEB_CONFIG_FILE=str(web_config),
    )
    assert completed.returncode == 1, completed.stderr
    assert "certificate has expired" in completed.stderr
    assert completed.stderr.endswith(
        "; its certificate is out of its dates: renew it, or set this machine's clock right;"
        " trusting another CA would not help\n"
    )


@pytest.mark.parametrize(
    ("days", "said"),
    [((-2, -1), "has expired (notAfter="), ((1, 2), "is not yet valid (notBefore=")],
    ids=["expired", "not yet valid"],
)
def test_the_shell_signer_refuses_its_web_configs_certificate_out_of_its_dates(
    days: tuple[int, int], said: str, tmp_path: Path
) -> None:
    """sign.sh, which pins the web config's own certificate by its public key (curl then checks
    no dates), refuses one expired or not yet valid as sign.py does: exit 1, one line saying so
    and what to do, without connecting to the bridge's address."""
    now = datetime.now(UTC)
    leaf = trustme.CA().issue_cert(
        "127.0.0.1",
        not_before=now + timedelta(days=days[0]),
        not_after=now + timedelta(days=days[1]),
    )
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: k.pem\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        completed = _run(
            [*_signer("sign.sh"), "--timeout", "2", "ex_esdb_health", "node_health_updated",
             HEALTHY],
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_HTTP_ADDR=f"127.0.0.1:{listener.getsockname()[1]}",
            EXESDB_WEB_CONFIG_FILE=str(web_config),
        )  # fmt: skip
        with contextlib.suppress(BlockingIOError):  # none in the backlog: curl never connected
            listener.accept()[0].close()
            pytest.fail("sign.sh connected to the bridge's address")
    assert completed.returncode == 1, completed.stderr
    [line] = completed.stderr.splitlines()
    assert f": the bridge's certificate (EXESDB_WEB_CONFIG_FILE's) {said}" in line
    assert line.endswith(
        ", so nothing was sent: renew it, or set this machine's clock right; trusting another CA"
        " would not help"
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("sign.py", "Permission denied"),
        ("sign.sh", "not a file this user can read"),
    ],
)
def test_a_signer_names_a_web_config_certificate_it_cannot_read(
    name: str, why: str, tmp_path: Path
) -> None:
    """A web config whose cert_file this user may not read (the bridge's user's alone) is bad
    usage, exit 2, naming the file and why, before anything is sent; --cacert is the way round."""
    cert = tmp_path / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(cert))
    prefix = withhold(cert)
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: k.pem\n")
    completed = _run(
        [*prefix, *_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        EXESDB_WEB_CONFIG_FILE=str(web_config),
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        f"EXESDB_WEB_CONFIG_FILE: tls_server_config.cert_file {cert}: {why}; --cacert FILE"
        " trusts a CA of your own instead\n"
    )


@pytest.mark.parametrize("name", ["sign.py", "sign.sh"])
def test_a_signer_refuses_a_web_config_certificate_that_holds_none(
    name: str, tmp_path: Path
) -> None:
    """A web config whose cert_file holds no PEM certificate (its key named twice) is bad usage,
    exit 2, saying so before anything is sent, not a TLS failure against what is there."""
    (tmp_path / "server.key").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
    completed = _run(
        [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        EXESDB_WEB_CONFIG_FILE=str(web_config),
    )
    assert completed.returncode == 2, completed.stderr
    assert "EXESDB_WEB_CONFIG_FILE: tls_server_config" in completed.stderr
    assert "holds no PEM certificate" in completed.stderr
    assert "AAAA" not in completed.stderr


@pytest.mark.parametrize("name", ["sign.py", "sign.sh"])
@pytest.mark.parametrize("fifo", ["web.yml", "server.pem"])
def test_a_signer_never_waits_on_a_web_config_or_certificate_that_is_a_fifo(
    name: str, fifo: str, tmp_path: Path
) -> None:
    """A web config, or its cert_file, that is a FIFO is not opened (a reader would wait for a
    writer): the web config is then left unread, as one that cannot be read (plain http, to
    nothing listening there: exit 1); its cert_file is named, exit 2."""
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: k.pem\n")
    with FifoReleaser(tmp_path / fifo) as released:
        completed = _run(
            [*_signer(name), "ex_esdb_health", "node_health_updated", HEALTHY],
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
            EXESDB_WEB_CONFIG_FILE=str(web_config),
        )
    assert released.released == 0
    assert "Traceback" not in completed.stderr
    if fifo == "web.yml":
        assert completed.returncode == 1, completed.stderr
    else:
        why = "not a regular file" if name == "sign.py" else "not a file this user can read"
        assert completed.returncode == 2, completed.stderr
        assert (
            f"EXESDB_WEB_CONFIG_FILE: tls_server_config.cert_file {tmp_path / fifo}: {why}"
        ) in completed.stderr


def test_the_integration_api_example_broadcasts_and_reads_its_metrics(tmp_path: Path) -> None:
    """examples/integration_api.py starts a bridge in-process, broadcasts health, metrics and an
    alert, and prints the series they made on /metrics."""
    completed = _run(
        [sys.executable, str(EXAMPLES / "integration_api.py")],
        EXESDB_STATE_DIR=str(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert out.count("PublishStatus.PUBLISHED") == 3
    assert re.search(r'exesdb_component_health_status\{.*component="orders_store",'
                     r'status="degraded"\} 1\.0', out)  # fmt: skip
    assert re.search(r'exesdb_performance_value\{.*metric="latency_ms".*\} 12\.5', out)
    assert re.search(r'exesdb_alerts_total\{severity="critical",category="system"\} 1\.0', out)


def test_the_integration_api_example_runs_apart_from_a_bridge_the_shell_is_set_up_for(
    tmp_path: Path, webhook_receiver: Callable[..., WebhookReceiver]
) -> None:
    """In a shell set up for another bridge (its address taken, its state folder, a Redis bus,
    webhook receivers), the example still runs, on its own port, state and bus, and sends its
    made-up alert nowhere."""
    receiver = webhook_receiver()
    shell_state = tmp_path / "shell-state"
    shell_state.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        completed = _run(
            [sys.executable, str(EXAMPLES / "integration_api.py")],
            EXESDB_HTTP_ADDR=f"127.0.0.1:{taken.getsockname()[1]}",
            EXESDB_STATE_DIR=str(shell_state),
            EXESDB_BUS=f"redis://127.0.0.1:{free_port()}/0",
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_WEBHOOK_URLS=receiver.url,
            EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
            EXESDB_WEBHOOK_CONFIG_FILE=str(tmp_path / "not-there.yml"),
            EXESDB_ALERTMANAGER_URL=receiver.url,
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("PublishStatus.PUBLISHED") == 3
    assert list(shell_state.iterdir()) == []
    assert receiver.requests == []


def test_the_integration_api_example_warns_of_a_misspelt_variable_as_run_does(
    tmp_path: Path,
) -> None:
    """A bridge embedded through the integration API warns at start, once, of a variable that
    looks meant for it but is no setting, as `exesdb-bridge run` does, and runs all the same."""
    completed = _run(
        [sys.executable, str(EXAMPLES / "integration_api.py")],
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_WEBHOOK_URL="http://x",
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("PublishStatus.PUBLISHED") == 3
    warning = (
        "EXESDB_WEBHOOK_URL is set but is not a setting of the bridge (ignored); did you mean"
        " EXESDB_WEBHOOK_URLS?"
    )
    assert completed.stderr.count(warning) == 1, completed.stderr


def test_the_integration_api_example_says_a_bad_setting_as_run_does(tmp_path: Path) -> None:
    """In a shell with a bad setting (ingest on, no key), the example prints each problem on a
    line and exits 2, as `exesdb-bridge run` does, without a traceback."""
    completed = _run(
        [sys.executable, str(EXAMPLES / "integration_api.py")],
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_INGEST="true",
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == (
        "integration_api.py: bad configuration:\n"
        "  SECRET_KEY_BASE: is not set; with EXESDB_INGEST=true it must be set to at least 32"
        " characters\n"
    )
    assert completed.stdout == ""


def test_the_integration_api_example_answers_help_without_starting_a_bridge(
    tmp_path: Path,
) -> None:
    """``integration_api.py --help`` prints what the example does and exits 0, and an argument it
    does not take is a usage error (exit 2): neither starts a bridge."""
    helped = _run(
        [sys.executable, str(EXAMPLES / "integration_api.py"), "--help"],
        EXESDB_STATE_DIR=str(tmp_path),
    )
    assert (helped.returncode, helped.stderr) == (0, ""), helped.stderr
    assert helped.stdout.startswith("usage: integration_api.py [-h]\n")
    assert "Run a bridge inside your application" in helped.stdout
    assert "bridge at" not in helped.stdout
    wrong = _run(
        [sys.executable, str(EXAMPLES / "integration_api.py"), "--port", "9571"],
        EXESDB_STATE_DIR=str(tmp_path),
    )
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert "unrecognized arguments: --port 9571" in wrong.stderr


RUN_BY: dict[str, Callable[..., None]] = {
    "sign.sh": test_a_signer_posts_a_message_the_bridge_accepts,
    "sign.py": test_a_signer_posts_a_message_the_bridge_accepts,
    "integration_api.py": test_the_integration_api_example_broadcasts_and_reads_its_metrics,
}


def test_every_example_is_run_by_a_test() -> None:
    """Each file in examples/ is one a test above runs (a new example needs its test)."""
    assert {path.name for path in EXAMPLES.iterdir() if path.is_file()} == set(RUN_BY)


def test_the_integration_page_quotes_the_example_it_points_at() -> None:
    """Each call in the core shown on docs/integration.md is a call the runnable example makes."""
    from tests.doc_text import fenced, page

    core = fenced(page("integration"), "python")[0]
    calls = re.findall(r"(?:exesdb|bridge)\.\w+\(.*?\)(?=\s|$)|Bridge\(.*?\)\)", core, re.M)
    assert len(calls) >= 6
    example = (EXAMPLES / "integration_api.py").read_text()
    assert [call for call in calls if call not in example] == []
