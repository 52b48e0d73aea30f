"""The web config file's schema: exporter-toolkit's keys, read strictly, each fault named."""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from pydantic import BaseModel

from bridge.cli import main
from bridge.errors import ConfigError
from bridge.webconfig.loading import load
from bridge.webconfig.schema import WebConfig, parse_web_config
from tests.doc_text import fenced, page
from tests.support import free_port, rsa_key_pem, run_command, withhold
from tests.webconfig.files import WebFiles, bcrypt_hash

HASH = bcrypt_hash("pw")
HERE = Path("/etc/exesdb/web.yml")


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(text, HERE)
    return list(caught.value.problems)


def test_an_empty_file_means_plain_http_without_auth():
    """An empty file is valid: no TLS, no users, no headers (as in the toolkit)."""
    config = parse_web_config("", HERE)
    assert config.tls is None
    assert config.basic_auth_users == {}
    assert config.http_server_config.headers.items() == ()


def test_a_full_toolkit_file_reads_with_paths_from_its_folder():
    """Every supported key reads; relative paths are taken from the file's folder."""
    config = parse_web_config(
        "tls_server_config:\n"
        "  cert_file: server.pem\n"
        "  key_file: /abs/server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: ca/clients.pem\n"
        "  min_version: TLS13\n"
        "  max_version: TLS13\n"
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
        "  prefer_server_cipher_suites: false\n"
        "http_server_config:\n"
        "  http2: false\n"
        "  headers:\n"
        "    X-Frame-Options: deny\n"
        "    X-Content-Type-Options: nosniff\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        "    Content-Security-Policy: ''\n"
        f"basic_auth_users:\n  alice: {HASH}\n",
        HERE,
    )
    tls = config.tls
    assert tls is not None
    assert (tls.cert_file, tls.key_file, tls.client_ca_file) == (
        "/etc/exesdb/server.pem",
        "/abs/server.key",
        "/etc/exesdb/ca/clients.pem",
    )
    assert tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.http_server_config.headers.items() == (
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
        ("Strict-Transport-Security", "max-age=31536000"),
    )
    assert list(config.basic_auth_users) == ["alice"]


@pytest.mark.parametrize(
    "setting",
    [
        "client_allowed_sans: [a.example]",
        "min_version: TLS13",
        "max_version: TLS12",
        "cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]",
        "prefer_server_cipher_suites: false",
    ],
)
def test_tls_settings_without_a_certificate_are_refused_by_name(setting: str):
    """Such a key does not turn TLS on (the toolkit's rule: a certificate, key, client CA or
    client-auth type does), so it would do nothing: an allow-list or a minimum version that
    protects nothing is refused by name, not taken as "TLS off"; so with blank certificate keys."""
    key = setting.split(":")[0]
    for text in (
        f"tls_server_config:\n  {setting}\n",
        f"tls_server_config:\n  cert_file: ''\n  key_file:\n  {setting}\n",
    ):
        assert _problems(text) == [
            f"{HERE}: tls_server_config: {key} does nothing while TLS is off: give cert_file and "
            "key_file (or cert and key) to turn TLS on, or leave it out"
        ]


@pytest.mark.usefixtures("clean_env")
def test_check_config_exits_2_naming_a_tls_setting_given_without_tls(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    """check-config (as run) stops with exit status 2 on client_allowed_sans without TLS, where it
    would have summarised the file as "TLS off; no auth"."""
    path = WebFiles(tmp_path / "web").write(
        "tls_server_config:\n  client_allowed_sans: [a.example]\n"
    )
    monkeypatch.setenv("EXESDB_WEB_CONFIG_FILE", str(path))
    with pytest.raises(SystemExit) as stopped:
        main(["check-config"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "EXESDB_WEB_CONFIG_FILE" in err
    assert "tls_server_config: client_allowed_sans does nothing while TLS is off" in err


@pytest.mark.usefixtures("clean_env")
def test_check_config_exits_2_naming_a_rate_limit_past_its_bounds(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    """check-config (as run) stops with exit status 2 on a rate_limit past 24h or a burst past
    1000000, naming each key and its range, where a burst past a float's range passed it and
    then stopped the bridge's start with a traceback."""
    path = WebFiles(tmp_path / "web").write(
        f"rate_limit:\n  interval: 99999999999999999999h\n  burst: {10**400}\n"
    )
    monkeypatch.setenv("EXESDB_WEB_CONFIG_FILE", str(path))
    with pytest.raises(SystemExit) as stopped:
        main(["check-config"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "rate_limit.interval: must be a duration from 0 (no limit) to 24h" in err
    assert "rate_limit.burst: must be a whole number from 0 to 1000000" in err


def test_a_rate_limit_at_its_bounds_is_taken():
    """An interval of 24h and a burst of 1000000, the most rate_limit takes, load."""
    config = parse_web_config("rate_limit:\n  interval: 24h\n  burst: 1000000\n", HERE)
    assert (config.rate_limit.interval, config.rate_limit.burst) == (86_400.0, 1_000_000)


def test_go_zero_values_and_nulls_read_as_absent_keys():
    """As in the toolkit, a refused key at its zero value ("", [], interval 0) and a null where a
    mapping goes (every user commented out) read as if left out."""
    config = parse_web_config(
        "tls_server_config:\n"
        "  cert: ''\n"
        "  client_allowed_sans: []\n"
        "  curve_preferences: []\n"
        "http_server_config:\n"
        "  headers:\n"
        "rate_limit:\n"
        "  interval: 0\n"
        "  burst: 0\n"
        "basic_auth_users:\n"
        "#  alice: $2y$10$...\n",
        HERE,
    )
    assert config.tls is None
    assert config.basic_auth_users == {}
    assert config.http_server_config.headers.items() == ()


def test_one_curve_of_curve_preferences_is_taken():
    """curve_preferences naming one curve, by Go's name, reads as given (the toolkit's sample
    names CurveP521 alone)."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [CurveP521]\n",
        HERE,
    )
    assert config.tls is not None
    assert config.tls.curve_preferences == ("CurveP521",)


def test_blank_tls_keys_are_unset_as_in_the_toolkit():
    """Blank cert_file, key_file, client_ca_file and client_auth_type (a template's empty values)
    leave TLS off instead of turning it on without a certificate."""
    text = (
        "tls_server_config:\n  cert_file: ''\n  key_file: ''\n"
        "  client_ca_file: ''\n  client_auth_type: ''\n"
    )
    assert parse_web_config(text, HERE).tls is None


def test_require_client_cert_is_the_old_name_of_require_any_client_cert():
    """The toolkit still takes RequireClientCert, as RequireAnyClientCert."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n"
        "  client_auth_type: RequireClientCert\n  client_ca_file: c\n",
        HERE,
    )
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAnyClientCert"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "tls_server_config:\n  cert_fil: a.pem\n",
            "tls_server_config.cert_fil: unknown key; did you mean 'cert_file'? allowed here: ",
        ),
        ("bogus: 1\n", "bogus: unknown key; allowed here: tls_server_config"),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: me\n",
            "http_server_config.headers.X-Powered-By: unknown key",
        ),
        (
            "http_server_config:\n  headers:\n    Server: me\n",
            "http_server_config.headers.Server: unknown key",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config.headers.X-Frame-Options",
        ),
        # Blank or null, as the toolkit refuses them (not left unset as a blank CSP is).
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: ''\n",
            "http_server_config.headers.X-Frame-Options: must be 'deny' or 'sameorigin' (got '')",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options:\n",
            "http_server_config.headers.X-Content-Type-Options: empty (null)",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
            "tls_server_config.client_auth_type",
        ),
        ("tls_server_config:\n  min_version: TLS14\n", "tls_server_config.min_version"),
        ("tls_server_config:\n  cert_file: a.pem\n", "TLS needs key_file"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
            "client_ca_file is set but client_auth_type is NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert needs client_ca_file or client_ca (Python's ssl verifies every",
        ),
        (  # named as written: the toolkit's old name for it
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  client_auth_type: RequireClientCert\n",
            "client_auth_type RequireClientCert (RequireAnyClientCert) needs client_ca_file or",
        ),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: b\n",
            "TLS needs cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  min_version: TLS13\n  max_version: TLS12\n",
            "min_version TLS13 is above max_version",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "basic_auth_users (line 2, its key not shown): must be a bcrypt",
        ),
        # A named id (HASH has a random salt): every pytest-xdist worker must collect the same.
        pytest.param(
            f"basic_auth_users:\n  'a:b': {HASH}\n",
            "basic_auth_users: a user name must",
            id="colon-in-user-name",
        ),
        (
            "tls_server_config:\n  key: '-----BEGIN'\n  key_file: b\n  cert_file: a\n",
            "at most one of key and key_file",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca: not a certificate\n",
            "tls_server_config.client_ca: must be PEM CA certificates",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [a]\n",
            "client_allowed_sans needs a client_auth_type that checks certificates",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  curve_preferences: [X25519, CurveP256]\n",
            "tls_server_config.curve_preferences: Python's ssl sets one curve only: give one of"
            " CurveP256, CurveP384, CurveP521 and X25519, or leave the key out",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [P256]\n",
            "tls_server_config.curve_preferences.0: must be 'CurveP256', 'CurveP384', 'CurveP521'"
            " or 'X25519'; did you mean 'CurveP256'? (got 'P256')",
        ),
        # The toolkit refuses it too: yaml.v2 reads no string, "" included, into a []Curve.
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: ''\n",
            "tls_server_config.curve_preferences: must be a list (got '')",
        ),
        ("rate_limit:\n  interval: soon\n", "rate_limit.interval: 'soon' is not a duration"),
        ("rate_limit:\n  interval: 1s\n  burst: -1\n", "rate_limit.burst"),
        (
            "rate_limit:\n  interval: 1s\n  burst: '5'\n",
            "rate_limit.burst: must be a whole number without quotes, as Go's YAML reader asks"
            " (got '5')",
        ),
        # Bounded as the environment's settings and the receivers file are: past them, a slip.
        (
            "rate_limit:\n  interval: 24h1s\n",
            "rate_limit.interval: must be a duration from 0 (no limit) to 24h, e.g. 1s"
            " (got '24h1s')",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 1000001\n",
            "rate_limit.burst: must be a whole number from 0 to 1000000, e.g. 10 (got 1000001)",
        ),
        ("tls_server_config: [\n", "not valid YAML at line"),
        (
            "tls_server_config:\n  cert_file a\n  key_file: b\n",
            "web.yml: not valid YAML at line 3: a ': ' where YAML reads a value: a value holding"
            " ': ' needs quotes, and a line above without its own ': ' runs on into this one",
        ),
        ("- a\n- b\n", "the top level must be a mapping"),
        (
            'http_server_config:\n  headers:\n    X-XSS-Protection: "1\\r\\nX-Evil: 1"\n',
            "X-XSS-Protection: must be one line",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(text: str, named: str):
    """Unknown keys, bad values and unsupported toolkit keys are refused, each by its key."""
    problems = _problems(text)
    assert any(named in problem for problem in problems), problems
    assert all(problem.startswith(f"{HERE}: ") for problem in problems)


@pytest.mark.parametrize(
    ("key", "written", "meant"),
    [
        ("client_auth_type", "RequireAndVerifyClientCerts", "RequireAndVerifyClientCert"),
        ("client_auth_type", "requireandverifyclientcert", "RequireAndVerifyClientCert"),
        ("min_version", "tls12", "TLS12"),
        ("max_version", "TLS1.3", "TLS13"),
    ],
)
def test_a_misspelt_word_is_refused_with_the_word_meant(key: str, written: str, meant: str):
    """A word of tls_server_config spelt nearly as one it takes, or in another letter case, is
    refused (the file takes the exact word, as the toolkit does) naming its key and the word
    meant, as the settings answer a misspelt EXESDB_WEBHOOK_MIN_SEVERITY."""
    text = f"tls_server_config:\n  cert_file: a\n  key_file: b\n  {key}: {written}\n"
    [problem] = _problems(text)
    assert problem.startswith(f"{HERE}: tls_server_config.{key}: must be ")
    assert problem.endswith(f"; did you mean {meant!r}? (got {written!r})")


def test_a_header_s_word_in_capitals_is_refused_with_the_word_meant():
    """`X-Frame-Options: DENY` is refused (the toolkit takes only `deny`), offering `deny`."""
    assert _problems("http_server_config:\n  headers:\n    X-Frame-Options: DENY\n") == [
        f"{HERE}: http_server_config.headers.X-Frame-Options: must be 'deny' or 'sameorigin';"
        " did you mean 'deny'? (got 'DENY')"
    ]


def test_a_null_curve_preferences_reads_as_left_out():
    """curve_preferences with nothing after it (a null, which yaml.v2 reads as Go's zero value)
    is taken as left out: OpenSSL's curves."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences:\n", HERE
    )
    assert config.tls is not None
    assert config.tls.curve_preferences == ()


def test_a_bad_hash_is_never_shown_nor_its_user_s_name():
    """A refused basic_auth_users entry is named by its line, neither its value nor its key
    shown: a key may be a secret too (a password and a user's name swapped)."""
    [problem] = _problems(f"basic_auth_users:\n  bob: '{HASH}'\n  s3cret-password: alice\n")
    assert problem.endswith(
        "basic_auth_users (line 3, its key not shown): must be a bcrypt hash"
        " ($2y$, $2b$, $2a$ or $2x$), e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n'"
    )
    assert "s3cret" not in problem


@pytest.mark.parametrize(
    "value",
    [HASH[:-1], HASH[:29], HASH + "x", HASH[:20] + "!" + HASH[21:]],
    ids=["one-short", "half", "one-more", "a-bad-character"],
)
def test_a_hash_cut_short_or_changed_is_told_it_is_not_whole(value: str):
    """A value that starts as a bcrypt hash but is not a whole one (pasted short, with a
    character more or changed) is told so and what a whole one is, not that it must be a
    bcrypt hash of one of the forms it has; the value is not shown."""
    [problem] = _problems(f"basic_auth_users:\n  alice: '{value}'\n")
    assert problem == (
        f"{HERE}: basic_auth_users (line 2, its key not shown): starts as a bcrypt hash but is"
        " not a whole one ($2y$, two digits of cost, $, then 53 characters of ./A-Za-z0-9: 60"
        " in all): copy it again whole, or make a new one, e.g. with"
        " htpasswd -nBC 10 \"\" | tr -d ':\\n'"
    )
    assert HASH[7:20] not in problem


def test_a_whole_htpasswd_line_as_the_hash_is_told_to_give_the_hash_alone():
    """An htpasswd line (``alice:$2y$…``, as ``htpasswd -nB alice`` prints it) pasted as a
    user's value is told to give the hash alone, not only that it must be a bcrypt hash;
    neither the line's name nor its hash is shown."""
    [problem] = _problems(f"basic_auth_users:\n  alice: 'carol:{HASH}'\n")
    assert problem == (
        f"{HERE}: basic_auth_users (line 2, its key not shown): holds a name and a colon before"
        " its bcrypt hash, as htpasswd prints a user's line (user:$2y$…): give the hash alone,"
        " from its $2 on; the user's name is the key"
    )
    assert "carol" not in problem
    assert HASH[7:] not in problem


@pytest.mark.parametrize("users", [1, 2])
def test_htpasswd_lines_pasted_as_written_are_told_to_put_a_space_after_the_colon(users: int):
    """htpasswd's lines pasted under basic_auth_users as it prints them (``alice:$2y$…``, no
    space after the colon), which YAML reads as one text, are told to put a space after the
    colon, not only that a mapping was expected; no name or hash is shown."""
    lines = "".join(f"  user{n}:{HASH}\n" for n in range(users))
    [problem] = _problems(f"basic_auth_users:\n{lines}")
    assert problem == (
        f"{HERE}: basic_auth_users: must be a mapping of user: bcrypt hash lines, and YAML reads"
        " what is under it as one text: a user's line as htpasswd prints it (user:$2y$…) needs"
        " a space after its colon (user: $2y$…)"
    )
    assert "user0" not in problem
    assert HASH[7:] not in problem
    spaced = parse_web_config(f"basic_auth_users:\n  user0: {HASH}\n", HERE)
    assert spaced.basic_auth_users == {"user0": HASH}


def test_an_htpasswd_line_among_users_is_named_by_its_line_as_lacking_its_colon_and_space():
    """An htpasswd line (``bob:$2y$…``) pasted among good users, which YAML cannot read, is
    named by its own line (the parser stops on the line after it) as lacking ': '."""
    text = f"basic_auth_users:\n  alice: '{HASH}'\n  bob:{HASH}\n"
    assert _problems(text) == [
        f"{HERE}: not valid YAML at line 3: a line among key: value lines has no ': ' (a colon"
        " and a space after the key)"
    ]


def test_the_original_2_form_is_refused_by_name_and_how_to_replace_it():
    """A "$2$" hash, which Go takes and the bcrypt package cannot check (no password would ever
    be let in), is told so and how to hash again; neither the hash nor its user is shown."""
    original = "$2$" + HASH[4:]
    [problem] = _problems(f"basic_auth_users:\n  alice: '{original}'\n")
    assert problem == (
        f"{HERE}: basic_auth_users (line 2, its key not shown): the original $2$ bcrypt form is "
        "not supported (the bcrypt package cannot check it): hash the password again, with "
        "htpasswd -nBC 10 \"\" | tr -d ':\\n' ($2y$) or Python's bcrypt.hashpw ($2b$)"
    )
    assert HASH[7:] not in problem
    assert "alice" not in problem
    with pytest.raises(ValueError, match="Invalid salt"):  # why: the package refuses it
        bcrypt.checkpw(b"pw", original.encode())


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_header_value_yaml_reads_as_a_number_is_asked_in_quotes(value: str):
    """X-XSS-Protection: 0 (or the toolkit sample's 1) is refused asking for quotes, as
    docs/security.md says, and taken quoted."""
    text = f"http_server_config:\n  headers:\n    X-XSS-Protection: {value}\n"
    assert _problems(text) == [
        f"{HERE}: http_server_config.headers.X-XSS-Protection: must be text, and YAML reads "
        "this unquoted value as a number: put it in quotes"
    ]
    quoted = parse_web_config(text.replace(f": {value}", f": '{value}'"), HERE)
    assert quoted.http_server_config.headers.items() == (("X-XSS-Protection", value),)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        pytest.param("123: '{hash}'", "key as a number", id="number-key"),
        pytest.param("yes: '{hash}'", "key as a boolean", id="yes-key"),
    ],
)
def test_an_unquoted_user_name_says_so_with_its_line(entry: str, kind: str):
    """A user's name YAML reads as a number or boolean is told to be quoted: the problem says
    the key is at fault, and gives its line (for ``yes:`` too) without showing it."""
    text = f"basic_auth_users:\n  alice: '{HASH}'\n  {entry.format(hash=HASH)}\n"
    [problem] = _problems(text)
    fault = ", at fault," if kind.startswith("key") else ""
    assert problem == (
        f"{HERE}: basic_auth_users (line 3, its key{fault} not shown): must be text, and YAML "
        f"reads this unquoted {kind}: put it in quotes"
    )


@pytest.mark.parametrize("value", ["123", "1.5", "yes", "[1]", "{a: 1}"])
def test_a_hash_that_is_no_text_is_told_at_once_it_must_be_a_bcrypt_hash(value: str):
    """A user's hash YAML reads as a number, boolean, list or mapping is told the whole truth
    in one problem (it must be a bcrypt hash), not first to be quoted and then, quoted, that
    it is no hash."""
    [problem] = _problems(f"basic_auth_users:\n  alice: '{HASH}'\n  bob: {value}\n")
    assert problem == (
        f"{HERE}: basic_auth_users (line 3, its key not shown): must be a bcrypt hash"
        " ($2y$, $2b$, $2a$ or $2x$), e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n'"
    )


def test_an_entry_a_merge_brings_is_named_by_its_line():
    """An entry of basic_auth_users brought by a merge (``<<: *anchor``) is named by the line it
    is written on, in the anchored mapping."""
    text = f"basic_auth_users:\n  <<: &users\n    alice: '{HASH}'\n    bob: plaintext\n"
    [problem] = _problems(text)
    assert problem.startswith(f"{HERE}: basic_auth_users (line 4, its key not shown): must be a")


@pytest.mark.parametrize(
    "text",
    [
        "basic_auth_users: &u\n  <<: [*u, {alice: bad}]\n",
        "--- &r\n<<: [*r, {basic_auth_users: {alice: bad}}]\n",
        "a0: &a0 {alice: bad}\n"
        + "".join(f"a{i}: &a{i}\n  <<: *a{i - 1}\n" for i in range(1, 2000))
        + "basic_auth_users:\n  <<: *a1999\n",
    ],
    ids=["merging-itself", "document-merging-itself", "chain-of-2000-merges"],
)
def test_merges_that_loop_or_run_deep_still_give_the_problem(text: str):
    """A mapping that merges its own anchor, or a long chain of merges, is a problem named by its
    line, not a crash: the merges are followed once each, without recursion."""
    problems = _problems(text)
    assert any("basic_auth_users (line" in problem for problem in problems), problems


def test_every_problem_is_reported_at_once():
    """Two bad keys give two lines."""
    problems = _problems("tls_server_config:\n  cert_fil: a\nbasic_auth_users:\n  bob: x\n")
    assert len(problems) == 2


def test_keys_of_tls_server_config_are_checked_together_beside_a_bad_key():
    """A conflict between keys of tls_server_config (cert and cert_file, a client-auth type
    without its CA, versions the wrong way round) is reported even when another key of the
    block is bad, so the file's every problem is said at once."""
    problems = _problems(
        "tls_server_config:\n  cert_file: a\n  cert: b\n  cipher_suites: 5\n"
        "  client_auth_type: RequireAnyClientCert\n"
        "  min_version: TLS13\n  max_version: TLS12\n"
    )
    assert [problem.removeprefix(f"{HERE}: ") for problem in problems] == [
        "tls_server_config.cipher_suites: must be a list (got 5)",
        "tls_server_config: at most one of cert and cert_file",
        "tls_server_config: TLS needs key_file (or key)",
        "tls_server_config: client_auth_type RequireAnyClientCert needs client_ca_file or "
        "client_ca (Python's ssl verifies every certificate it asks for, so it cannot take any "
        "certificate as Go does)",
        "tls_server_config: min_version TLS13 is above max_version",
    ]


def test_a_null_certificate_key_is_unset_as_in_the_toolkit():
    """A null cert_file (a template's empty value) leaves TLS off, as Go reads it: ""."""
    assert parse_web_config("tls_server_config:\n  cert_file:\n", HERE).tls is None


def test_the_summary_shows_neither_users_nor_hashes():
    """summary() says TLS on/off, client auth, how many SANs and users, the rate limit, nothing
    secret."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: c\n"
        "  client_allowed_sans: [prometheus.example]\n"
        f"basic_auth_users:\n  alice: {HASH}\n  bob: {HASH}\n"
        "rate_limit: {interval: 2s, burst: 5}\n",
        HERE,
    )
    summary = config.summary()
    assert "TLS on" in summary
    assert "RequireAndVerifyClientCert, 1 allowed SANs" in summary
    assert "rate limit: burst 5, one more every 2s" in summary
    assert "2 users" in summary
    assert "alice" not in summary
    assert HASH not in summary
    assert parse_web_config("", HERE).summary().startswith("TLS off")


def test_loading_checks_the_certificate_files(tmp_path: Path):
    """A certificate that does not load is refused naming cert_file; a good set loads."""
    files = WebFiles(tmp_path)
    good = files.write(files.tls_config())
    assert load(good).config.tls is not None
    (tmp_path / "server.key").write_text("not a key")
    with pytest.raises(ConfigError, match=r"tls_server_config\.cert_file: cannot load"):
        load(good)


def _encrypted(key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass phrase"),
    )


def _openssh(key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("key_not_pem", "{key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"),
        (
            "cert_not_pem",
            "{cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----) OpenSSL loads",
        ),
        ("key_encrypted", "{key} holds an encrypted private key: give it unencrypted"),
        (
            "key_openssh",
            "{key} holds an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----), which"
            " OpenSSL does not load: give a PEM private key (-----BEGIN PRIVATE KEY-----;"
            " ssh-keygen -p -m PEM converts an RSA or ECDSA one)",
        ),
        ("key_of_another", "the key is not the certificate's (KEY_VALUES_MISMATCH)"),
        ("key_of_another_type", "the key is not the certificate's (NO_CERTIFICATE_ASSIGNED)"),
    ],
)
def test_a_certificate_that_does_not_load_is_refused_saying_which_file_and_why(
    tmp_path: Path, spoil: str, reason: str
):
    """A certificate and key that do not load are refused naming the file at fault and what is
    wrong with it (an OpenSSH key told as one), not OpenSSL's bare "PEM lib"."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config())
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    if spoil == "key_not_pem":
        key.write_text("not a key\n")
    elif spoil == "cert_not_pem":
        cert.write_bytes(key.read_bytes())
    elif spoil == "key_encrypted":
        key.write_bytes(_encrypted(key.read_bytes()))
    elif spoil == "key_openssh":
        key.write_bytes(_openssh(key.read_bytes()))
    elif spoil == "key_of_another":
        key.write_bytes(files.ca.issue_cert("other.test").private_key_pem.bytes())
    else:  # an RSA key for trustme's EC certificate
        key.write_bytes(rsa_key_pem())
    with pytest.raises(ConfigError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert problem.endswith(
        f"tls_server_config.cert_file: cannot load {cert} with key_file {key}: "
        + reason.format(cert=cert, key=key)
    ), problem
    assert "PEM lib" not in problem


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize(
    ("option", "name"), [("cert_file", "server.pem"), ("key_file", "server.key")]
)
def test_a_certificate_or_key_the_bridge_may_not_read_is_named_with_why(
    tmp_path: Path, command: str, option: str, name: str
):
    """A web config's certificate or key file the bridge's user may not read stops start-up and
    check-config (exit 2) naming that file, its option and why, not the two files together with
    the system's words alone; nothing of the key is shown."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config())
    prefix = withhold(tmp_path / name)
    env = {
        "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "EXESDB_STATE_DIR": str(tmp_path / "state"),
        "EXESDB_WEB_CONFIG_FILE": str(path),
    }
    completed = run_command([*prefix, sys.executable, "-m", "bridge", command], env)
    assert completed.returncode == 2, completed.stderr
    assert (
        f"  EXESDB_WEB_CONFIG_FILE: {path}: tls_server_config.{option}: cannot read"
        f" {tmp_path / name}: Permission denied\n"
    ) in completed.stderr
    key = (tmp_path / "server.key").read_text().splitlines()[1]
    assert key not in completed.stdout + completed.stderr


def test_loading_checks_the_client_ca_file(tmp_path: Path):
    """A missing client CA file is refused naming client_ca_file."""
    files = WebFiles(tmp_path)
    path = files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: missing.pem"
        )
    )
    with pytest.raises(ConfigError, match=r"tls_server_config\.client_ca_file: cannot load"):
        load(path)


def test_bad_keys_do_not_hide_a_certificate_that_does_not_load(tmp_path: Path):
    """A bad key elsewhere and a key file that does not load are reported in one pass."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config() + "basic_auth_users:\n  alice: not-a-hash\n")
    (tmp_path / "server.key").write_text("not a key")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert [problem.split(": ", 2)[1] for problem in caught.value.problems] == [
        "basic_auth_users (line 5, its key not shown)",
        "tls_server_config.cert_file",
    ]
    assert all(problem.startswith(f"{path}: ") for problem in caught.value.problems)


def test_every_file_and_suite_of_tls_server_config_that_fails_is_reported_at_once(tmp_path: Path):
    """An unknown cipher suite, a key that does not load and a missing client CA: three lines."""
    files = WebFiles(tmp_path)
    path = files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: missing.pem\n"
            "cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]"
        )
    )
    (tmp_path / "server.key").write_text("not a key")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert [problem.split(": ", 2)[1] for problem in caught.value.problems] == [
        "tls_server_config.cipher_suites",
        "tls_server_config.cert_file",
        "tls_server_config.client_ca_file",
    ]


def test_unknown_cipher_suites_are_refused_with_the_allowed_list(tmp_path: Path):
    """A cipher suite name Go does not know is refused, listing the names allowed."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config("cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]"))
    with pytest.raises(ConfigError, match=r"cipher_suites: unknown ECDHE-RSA.*allowed: TLS_RSA"):
        load(path)


def test_a_missing_file_is_refused(tmp_path: Path):
    """A file that cannot be read is refused naming it."""
    with pytest.raises(ConfigError, match=r"missing\.yml: cannot read"):
        load(tmp_path / "missing.yml")


def test_the_documented_example_reads_and_its_hash_is_change_me():
    """The example file of docs/security.md reads as it is; its user's password is change-me."""
    example = fenced(page("security"), "yaml")[0]
    config = parse_web_config(example, HERE)
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    [hashed] = config.basic_auth_users.values()
    assert bcrypt.checkpw(b"change-me", hashed.encode())


def test_the_documented_refusal_is_the_one_printed():
    """The refusal shown in docs/security.md is, word for word, what the bridge says."""
    [shown] = fenced(page("security"), "text")
    line = shown.splitlines()[1].strip()
    path = Path("/etc/exesdb-bridge/web.yml")
    with pytest.raises(ConfigError) as caught:
        parse_web_config("tls_server_config:\n  client_auth: RequireAndVerifyClientCert\n", path)
    assert line == f"EXESDB_WEB_CONFIG_FILE: {caught.value.problems[0]}"


def test_another_kind_of_file_is_refused_without_showing_its_lines(tmp_path: Path) -> None:
    """A file of another kind (lines of /etc/shadow parse as YAML keys) is refused once, saying
    its keys are no names, without showing them."""
    text = "root:$6$s3cret:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    with pytest.raises(ConfigError) as caught:
        parse_web_config(text, tmp_path / "web.yml")
    assert list(caught.value.problems) == [
        f"{tmp_path / 'web.yml'}: (top level): a key that is no name (not shown: is this the file"
        " meant?); allowed here: tls_server_config, http_server_config, basic_auth_users,"
        " rate_limit"
    ]


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Each key a schema takes, as (its dotted path, its own name)."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        yield prefix + key, key
        for part in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(part, type) and issubclass(part, BaseModel):
                yield from _keys(part, f"{prefix}{key}.")


def test_the_security_page_names_every_key_of_the_web_config() -> None:
    """docs/security.md names each key the web config file takes (by its dotted path, its
    name, or as the section of a key named), so a key added to the schema is documented."""
    text = page("security")
    keys = list(_keys(WebConfig))
    assert ("tls_server_config.curve_preferences", "curve_preferences") in keys
    unnamed = [
        path
        for path, key in keys
        if f"`{path}`" not in text and f"`{key}`" not in text and f"`{path}." not in text
    ]
    assert unnamed == [], f"name these keys on docs/security.md: {unnamed}"
