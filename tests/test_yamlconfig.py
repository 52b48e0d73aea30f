"""The configuration files are read as Go's strict YAML reader reads them: a key given twice in
one mapping is refused, as promtool (exporter-toolkit) and amtool (Alertmanager) refuse it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from bridge.errors import ConfigError
from bridge.receivers import load_receivers
from bridge.webconfig.loading import load
from tests.support import require_binary
from tests.webconfig.files import WebFiles

HASH = "$2b$10$szTbDacVmqoGzR0UhmHKkuuIgJf.DXuX204J.admAuj.OXh95xAH."

# Each a web config with a key given twice; each passes with its second occurrence alone.
WEB_TWICE = {
    "user": f"basic_auth_users:\n  alice: '{HASH}'\n  alice: '{HASH}'\n",
    "section": (
        "http_server_config:\n  headers: {X-Frame-Options: deny}\n"
        "http_server_config:\n  http2: false\n"
    ),
}
# A receiver with its http_config twice: the first (basic auth) would be dropped silently.
RECEIVER_TWICE = (
    "  - url: https://hooks.example.com/alerts\n"
    "    http_config:\n"
    "      basic_auth: {username: alerts, password: hook-tok3n}\n"
    "    http_config:\n"
    "      tls_config: {insecure_skip_verify: true}\n"
)


def _web_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    return list(caught.value.problems)


def test_a_web_config_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    """A section given twice is named by its path with both lines, never kept as the last."""
    problems = _web_problems(tmp_path, WEB_TWICE["section"])
    assert problems == [
        f"{tmp_path / 'web.yml'}: http_server_config: given twice (lines 1 and 3); keep one, "
        "as Go's YAML reader (and so Alertmanager and the exporter-toolkit) asks"
    ]


def test_a_user_given_twice_is_refused_without_showing_the_name(tmp_path: Path) -> None:
    """Two entries for one user are refused at basic_auth_users; the user name is not shown."""
    problems = _web_problems(tmp_path, WEB_TWICE["user"].replace("alice", "al1ce-tok3n"))
    assert len(problems) == 1
    assert "basic_auth_users: a key given twice (lines 2 and 3;" in problems[0]
    assert "tok3n" not in problems[0]


def test_a_receivers_key_given_twice_is_refused_beside_the_other_problems(tmp_path: Path) -> None:
    """A receiver's http_config given twice is named, and a bad key elsewhere still is."""
    path = tmp_path / "receivers.yml"
    path.write_text("webhook_configs:\n" + RECEIVER_TWICE + "    colour: red\n")
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    problems = "\n".join(caught.value.problems)
    assert "webhook_configs.0.http_config: given twice (lines 3 and 5)" in problems
    assert "webhook_configs.0.colour: unknown key" in problems
    assert "tok3n" not in problems


def test_a_key_a_merge_brings_in_may_be_given_again(tmp_path: Path) -> None:
    """`<<: *anchor` then the same key overrides it, as YAML allows; within one flow mapping a
    key twice is still refused."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "x-defaults: &defaults {send_resolved: false, max_alerts: 5}\n"
        "webhook_configs:\n"
        "  - {<<: *defaults, max_alerts: 7, url: https://hooks.example.com/a}\n"
    )
    with pytest.raises(ConfigError) as caught:  # x-defaults is no key of the file
        load_receivers(path)
    assert [p for p in caught.value.problems if "twice" in p] == []
    path.write_text("webhook_configs:\n  - {url: https://a.example, timeout: 1s, timeout: 2s}\n")
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    assert "webhook_configs.0.timeout: given twice (line 2)" in caught.value.problems[0]


# Each a mapping Go reads into a map, holding a key twice through a merge (<<): yaml.v2's strict
# reader refuses each ("already set in map"), where PyYAML keeps one hash silently.
MERGED_TWICE = {
    "merge-then-written": f"basic_auth_users:\n  <<: {{al1ce: '{HASH}'}}\n  al1ce: '{HASH}'\n",
    "written-then-merge": f"basic_auth_users:\n  al1ce: '{HASH}'\n  <<: {{al1ce: '{HASH}'}}\n",
    "two-merges": f"basic_auth_users:\n  <<: [{{al1ce: '{HASH}'}}, {{al1ce: '{HASH}'}}]\n",
    "merge-of-a-merge": (
        f"basic_auth_users:\n  <<: &users\n    <<: {{al1ce: '{HASH}'}}\n    al1ce: '{HASH}'\n"
    ),
    "header": (
        "http_server_config:\n  headers:\n    <<: {X-Frame-Options: deny}\n"
        "    X-Frame-Options: sameorigin\n"
    ),
}


@pytest.mark.parametrize("case", sorted(MERGED_TWICE))
def test_a_user_or_header_given_twice_through_a_merge_is_refused(tmp_path: Path, case: str) -> None:
    """A user (or header) given twice in one Go map, a merge counted, is refused as promtool
    refuses it, rather than one of two hashes honoured silently; no user's name is shown."""
    [problem] = _web_problems(tmp_path, MERGED_TWICE[case])
    assert "given twice (line" in problem
    assert ", a merge (<<) counted" in problem
    assert "al1ce" not in problem


@pytest.mark.parametrize("case", sorted(MERGED_TWICE))
def test_promtool_refuses_a_key_given_twice_in_a_map_through_a_merge(
    tmp_path: Path, case: str
) -> None:
    """exporter-toolkit's check refuses each map above: the bridge's refusal is Go's."""
    promtool = require_binary("promtool")
    path = tmp_path / "web.yml"
    path.write_text(MERGED_TWICE[case])
    refused = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "already set in map" in refused.stdout + refused.stderr


def test_a_receiver_s_header_given_twice_through_a_merge_is_refused(tmp_path: Path) -> None:
    """http_headers is a Go map in Alertmanager's http_config too: a header a merge brings may
    not be given again, where PyYAML would keep one of the two silently."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n  - url: https://hooks.example.com/a\n    http_config:\n"
        "      http_headers:\n        <<: {X-Team: {values: [a]}}\n"
        "        X-Team: {values: [b]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    assert list(caught.value.problems) == [
        f"{path}: webhook_configs.0.http_config.http_headers.X-Team: given twice (lines 5 and 6, "
        "a merge (<<) counted); keep one, as Go's YAML reader (and so Alertmanager and the "
        "exporter-toolkit) asks"
    ]


def _client_auth_after_a_merge(written_first: bool) -> str:
    """A TLS section with a client CA whose client_auth_type is written, and brought again by a
    merge, NoClientCert (which the toolkit refuses beside a client CA)."""
    written, merged = (
        "  client_auth_type: RequireAndVerifyClientCert\n",
        ("  <<: {client_auth_type: NoClientCert}\n"),
    )
    return (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  client_ca_file: client-ca.pem\n"
        + (written + merged if written_first else merged + written)
    )


def test_a_key_written_before_a_merge_that_brings_it_again_is_refused(tmp_path: Path) -> None:
    """A section's key written before a merge that brings it again is refused naming both lines:
    Go's reader takes the merge's value there (promtool below), PyYAML the written one. Written
    after the merge, it overrides it in both, and is taken."""
    WebFiles(tmp_path)
    problems = _web_problems(tmp_path, _client_auth_after_a_merge(written_first=True))
    assert problems == [
        f"{tmp_path / 'web.yml'}: tls_server_config.client_auth_type: given at line 5 and again "
        "by a merge (<<) after it, at line 6: Go's YAML reader takes the merge's value and "
        "PyYAML the one written; give it once, or after the merge"
    ]
    path = tmp_path / "web.yml"
    path.write_text(_client_auth_after_a_merge(written_first=False))
    assert load(path).config.tls is not None


def test_go_takes_the_merge_s_value_over_a_key_written_before_it(tmp_path: Path) -> None:
    """promtool (Go's reader) takes NoClientCert from the merge after the written key, and so
    refuses the client CA beside it; with the key written after the merge it takes the file."""
    promtool = require_binary("promtool")
    WebFiles(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(_client_auth_after_a_merge(written_first=True))
    check = [promtool, "check", "web-config", str(path)]
    refused = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "without a Client Auth Policy" in refused.stdout + refused.stderr
    path.write_text(_client_auth_after_a_merge(written_first=False))
    taken = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert taken.returncode == 0, taken.stdout + taken.stderr


@pytest.mark.parametrize("case", sorted(WEB_TWICE))
def test_promtool_refuses_the_same_web_configs(tmp_path: Path, case: str) -> None:
    """exporter-toolkit's own check (`promtool check web-config`) refuses each file the bridge
    refuses for a key given twice, and takes it with the second occurrence alone."""
    promtool = require_binary("promtool")
    twice, once = tmp_path / "twice.yml", tmp_path / "once.yml"
    twice.write_text(WEB_TWICE[case])
    lines = WEB_TWICE[case].splitlines(keepends=True)
    once.write_text("".join(lines[len(lines) // 2 :] if case == "section" else lines[::2]))
    refused = subprocess.run(
        [promtool, "check", "web-config", str(twice)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "already set" in refused.stdout + refused.stderr
    taken = subprocess.run(
        [promtool, "check", "web-config", str(once)], capture_output=True, text=True, timeout=60
    )
    assert taken.returncode == 0, taken.stdout + taken.stderr
    load(once)


# Booleans as a file may write them, and whether Go's YAML reader (yaml.v2, YAML 1.1) takes them.
BOOLEANS = {
    "true": True,
    "FALSE": True,
    "yes": True,
    "No": True,
    "on": True,
    "OFF": True,
    "y": True,  # text to PyYAML alone
    "N": True,
    "'yes'": False,  # text in quotes
    "'y'": False,
    '"true"': False,
    "tRue": False,  # no boolean in any YAML
    "1": False,  # a number
    "0": False,
}


@pytest.mark.parametrize("written", sorted(BOOLEANS))
def test_a_boolean_is_taken_as_promtool_takes_it(tmp_path: Path, written: str) -> None:
    """A boolean key (http2 here; every boolean of both files alike) takes what Go's reader
    takes, unquoted yes/no, on/off and y/n included, and refuses what it refuses: text in quotes
    and numbers, which pydantic alone would take; promtool agrees on each."""
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  http2: {written}\n")
    if BOOLEANS[written]:
        load(path)
    else:
        got = yaml.safe_load(written)
        # Told to leave out quotes only where there are some: not for tRue, nor for a number.
        how = " without quotes, as Go's YAML reader asks" if written[0] in "'\"" else ""
        assert _web_problems(tmp_path, path.read_text()) == [
            f"{path}: http_server_config.http2: must be true or false{how} (it also takes"
            f" yes/no, on/off and y/n) (got {got!r})"
        ]
    promtool = require_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode == 0) is BOOLEANS[written], checked.stdout + checked.stderr


@pytest.mark.parametrize("written", ["'yes'", "y", "1"])
def test_a_receiver_s_boolean_is_taken_as_amtool_takes_it(tmp_path: Path, written: str) -> None:
    """insecure_skip_verify (as every boolean of a receiver) is refused in quotes or as a number
    and taken as an unquoted y, by the bridge as by amtool."""
    block = (
        "    webhook_configs:\n      - url: https://hooks.example.com/a\n        http_config:\n"
        f"          tls_config: {{insecure_skip_verify: {written}}}\n"
    )
    path = tmp_path / "receivers.yml"
    path.write_text("".join(line[4:] for line in block.splitlines(keepends=True)))
    taken = BOOLEANS[written]
    if taken:
        load_receivers(path)
    else:
        with pytest.raises(ConfigError, match="insecure_skip_verify: must be true or false"):
            load_receivers(path)
    amtool = require_binary("amtool")
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: hooks\nreceivers:\n  - name: hooks\n" + block)
    checked = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode == 0) is taken, checked.stdout + checked.stderr


def test_amtool_refuses_the_same_receiver(tmp_path: Path) -> None:
    """Alertmanager's own check (`amtool check-config`) refuses the receiver block the bridge
    refuses for its http_config given twice."""
    amtool = require_binary("amtool")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: hooks\nreceivers:\n  - name: hooks\n    webhook_configs:\n"
        + "".join("    " + line for line in RECEIVER_TWICE.splitlines(keepends=True))
    )
    result = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "http_config already set" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("webhook_configs:\n  - url: https://a.example\n    send_resolved:\n", "send_resolved"),
        ("webhook_configs:\n  - url: https://a.example\n    max_alerts:\n", "max_alerts"),
        ("webhook_configs:\n  - url: https://a.example\n    timeout:\n", "timeout"),
        (
            "webhook_configs:\n  - url: https://a.example\n    http_config:\n"
            "      tls_config: {insecure_skip_verify: }\n",
            "http_config.tls_config.insecure_skip_verify",
        ),
    ],
)
def test_a_value_left_empty_is_refused_as_empty(tmp_path: Path, text: str, key: str) -> None:
    """A key with no value (a template's unset value) is refused saying it is empty, where Go
    would silently take false or 0 (send_resolved off, for one)."""
    path = tmp_path / "receivers.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    assert caught.value.problems == (
        f"{path}: webhook_configs.0.{key}: empty (null); give a value, or delete the line for "
        "the default (Go's YAML reader would silently take false, 0 or an empty string)",
    )


@pytest.mark.parametrize(
    ("value", "kind"), [("123456", "number"), ("0123", "number"), ("yes", "boolean")]
)
def test_an_unquoted_number_where_text_goes_is_refused_asking_for_quotes(
    tmp_path: Path, value: str, kind: str
) -> None:
    """A password written as a bare number (or yes) is refused asking for quotes, its value not
    shown: YAML has already read 0123 as 83 here, where Go's reader takes the text as written,
    so guessing the text back could send the wrong password."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n  - url: https://a.example\n    http_config:\n"
        f"      basic_auth: {{username: alerts, password: {value}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    assert caught.value.problems == (
        f"{path}: webhook_configs.0.http_config.basic_auth.password: must be text, and YAML "
        f"reads this unquoted value as a {kind}: put it in quotes",
    )
    path.write_text(path.read_text().replace(value, f"'{value}'"))
    loaded = load_receivers(path).webhook_configs[0].http_config.basic_auth
    assert loaded is not None
    assert loaded.password is not None
    assert loaded.password.get_secret_value() == value


def test_a_bare_number_as_bearer_token_is_named_as_written(tmp_path: Path) -> None:
    """bearer_token, read as authorization, is still named as the file writes it when its value
    is a bare number, never as the authorization.credentials the file does not hold."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n  - url: https://a.example\n    http_config: {bearer_token: 12345}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    assert caught.value.problems == (
        f"{path}: webhook_configs.0.http_config: bearer_token must be text, and YAML reads this "
        "unquoted value as a number: put it in quotes",
    )


def test_an_unquoted_y_or_n_where_text_goes_is_text_as_go_takes_it(tmp_path: Path) -> None:
    """An unquoted y or n that a boolean key takes as one is text where text goes (a user name, a
    password, a header's value, a user of basic_auth_users), as Go's reader takes it (amtool and
    promtool agree): it is no boolean that must be quoted."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text(
        "webhook_configs:\n  - url: https://hooks.example.com/a\n    http_config:\n"
        "      basic_auth: {username: n, password: Y}\n"
        "      http_headers: {X-Flag: {values: [y]}}\n"
    )
    [hook] = load_receivers(receivers).webhook_configs
    auth = hook.http_config.basic_auth
    assert auth is not None
    assert auth.password is not None
    assert (auth.username, auth.password.get_secret_value()) == ("n", "Y")
    assert list(hook.http_config.http_headers["X-Flag"].values) == ["y"]
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  y: '{HASH}'\n  N: '{HASH}'\n")
    assert sorted(load(web).config.basic_auth_users) == ["N", "y"]
    promtool = require_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "web-config", str(web)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("user", ["y", "yes"])
def test_a_user_written_bare_and_in_quotes_is_given_twice_as_go_reads_it(
    tmp_path: Path, user: str
) -> None:
    """``y`` and ``"y"`` are one user to Go's reader (it reads a key as its text: promtool
    refuses the file, "already set in map"), where PyYAML would keep one of two hashes silently."""
    text = f"basic_auth_users:\n  {user}: '{HASH}'\n  '{user}': '{HASH}'\n"
    problems = _web_problems(tmp_path, text)
    assert any("a key given twice (lines 2 and 3" in problem for problem in problems), problems
    promtool = require_binary("promtool")
    refused = subprocess.run(
        [promtool, "check", "web-config", str(tmp_path / "web.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "already set in map" in refused.stdout + refused.stderr


def _laughs(levels: int) -> str:
    """Ten strings, then each level a list of ten aliases to the level before: 10**levels."""
    lines = ["l0: &l0 [" + ", ".join(["TLS_AES_128_GCM_SHA256"] * 10) + "]"]
    lines += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


# Documents no reader should walk: what each is refused with.
UNWALKABLE = {
    "aliases-making-ten-million": (
        _laughs(7),
        "its anchors and aliases make more than 1000000 values: is it the right file?",
    ),
    "an-alias-inside-its-anchor": ("a: &a [b, *a]\n", "an alias names a node it is inside of"),
    # Constructed, the merge makes the inner mapping hold itself ({'c': {'c': ...}}).
    "a-merge-inside-its-anchor": (
        "a: &a {b: 1, c: {<<: *a}}\n",
        "an alias names a node it is inside of",
    ),
    "nested-past-the-composer": (
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "nested more than 100 levels deep: is it the right file?",
    ),
    "nested-deep-by-aliases": (
        "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60 + "\n",
        "nested more than 100 levels deep",
    ),
}


@pytest.mark.parametrize("kind", ["web config", "receivers file"])
@pytest.mark.parametrize("text", list(UNWALKABLE), ids=list(UNWALKABLE))
def test_a_document_no_reader_can_walk_is_refused_at_once(
    tmp_path: Path, kind: str, text: str
) -> None:
    """A file whose anchors and aliases make millions of values from a kilobyte (a "billion
    laughs"), whose alias names the node it is in, or nested past a hundred levels (as written,
    or through aliases) is refused in a line, within seconds: walked, the first took minutes
    (the web config's reload on the event loop), and the others ended in RecursionError (a
    traceback at start, a 500 to a request at each reload)."""
    document, said = UNWALKABLE[text]
    path = tmp_path / "file.yml"
    path.write_text(document)
    began = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load(path) if kind == "web config" else load_receivers(path)
    took = time.monotonic() - began
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: {said}")
    # 0.3 s on a quiet machine, 2.4 s seen on a busy one; walked, the first took minutes.
    assert took < 10, f"took {took:.1f} s"


def test_anchors_and_aliases_within_the_bound_are_read_as_written(tmp_path: Path) -> None:
    """A receivers file sharing one http_config among its receivers by an anchor is taken."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        "  - url: https://a.example/alerts\n"
        "    http_config: &shared {basic_auth: {username: alerts, password: hook-tok3n}}\n"
        "  - url: https://b.example/alerts\n"
        "    http_config: *shared\n"
    )
    second = load_receivers(path).webhook_configs[1]
    assert second.http_config.basic_auth is not None
