"""What the commands that ask a running bridge share: its options, the admin token, its refusals."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Final

from bridge.cli.client import Source, Target, target, url_argument, user_argument
from bridge.cli.shared import EXIT_USAGE, say_bad_configuration
from bridge.errors import ConfigError
from bridge.headers import PLAIN_HTTP_REFUSAL
from bridge.hidden import on_one_line
from bridge.redaction import safe_url
from bridge.urls import url_root

if TYPE_CHECKING:
    from bridge.client_environment import AdminClientValues, Location

__all__ = [
    "BRIDGE_ANSWER",
    "admin_token_or_exit",
    "bridge_json",
    "client_options",
    "say_refused",
    "target_or_exit",
]

# What a bridge answers every request with: JSON (docs/http-api.md#errors).
BRIDGE_ANSWER: Final = "the bridge's JSON"
# Refusals of a bridge set up otherwise than the one meant (another token, key, or its alerts):
# at EXESDB_HTTP_ADDR's default address, in a shell without the setting, most likely another
# bridge than the one started with EXESDB_HTTP_ADDR set (`EXESDB_HTTP_ADDR=… make run`). A shell
# that sets it, to the default's address too, asks where it was told to: nothing is added.
_ANOTHER_BRIDGE_CODES: Final = frozenset(
    {"unauthorized", "admin_disabled", "ingest_disabled", "invalid_signature", "unknown_alert"}
)
_AT_DEFAULT: Final = (
    "; that is EXESDB_HTTP_ADDR's default address (EXESDB_HTTP_ADDR not set here), where any"
    " bridge started without the setting listens: is it the bridge meant? One started with"
    " EXESDB_HTTP_ADDR=HOST:PORT is found with the same set here (or --url)"
)
_NEEDS_ADMIN: Final = (
    "needs EXESDB_ADMIN_TOKEN: set it to the admin token the bridge runs with "
    "(without one the bridge keeps its admin endpoints off)"
)


def client_options(parser: argparse.ArgumentParser) -> None:
    """Where the bridge is and how to reach it (``bridge.cli.client``)."""
    parser.add_argument(
        "--url",
        type=url_argument,
        help="the bridge (default: EXESDB_URL, else the address in EXESDB_HTTP_ADDR)",
    )
    parser.add_argument(
        "--cacert",
        metavar="FILE",
        help=(
            "trust this CA (PEM) for https (default: the system's CAs; at EXESDB_HTTP_ADDR,"
            " the certificate EXESDB_WEB_CONFIG_FILE names)"
        ),
    )
    parser.add_argument(
        "--user",
        type=user_argument,
        metavar="USER[:PASSWORD]",
        help="basic auth for a web config with basic_auth_users (asks for a missing password)",
    )


def target_or_exit(args: argparse.Namespace, settings: Location) -> Target:
    """The bridge ``--url`` / ``EXESDB_URL`` / ``EXESDB_HTTP_ADDR`` point at (exit 2 for an
    unusable ``--cacert``, port 0 or a web config file the bridge would refuse)."""
    try:
        return target(settings, url=args.url, cacert=args.cacert, user=args.user)
    except ConfigError as exc:
        if exc.problems[0].startswith("EXESDB_"):
            # The environment's (EXESDB_WEB_CONFIG_FILE, port 0), told as settings refused are.
            say_bad_configuration(exc)
        else:  # the command line's (--cacert, --user): one line, as argparse's own
            print(f"exesdb-bridge: {'; '.join(exc.problems)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def admin_token_or_exit(settings: AdminClientValues, command: str) -> str:
    """``EXESDB_ADMIN_TOKEN`` for ``command`` (exit 2 when unset or empty: the bridge then keeps
    its admin endpoints off)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not token:
        print(f"exesdb-bridge: {command} {_NEEDS_ADMIN}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return token


def bridge_json(text: str, key: str) -> dict[str, Any] | None:
    """The bridge's JSON answer holding ``key``; None for anything else (another server)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and key in answer else None


def say_refused(bridge: Target, path: str, status: int, text: str) -> None:
    """Say on stderr what the bridge answered instead of 200, naming what was asked, or why
    nothing answered (``status`` 0)."""
    answer = bridge_json(text, "error")
    if status == 0:
        print(f"exesdb-bridge: {text}", file=sys.stderr)
    elif status == 400 and text.strip() == PLAIN_HTTP_REFUSAL:  # Go's words, and the bridge's
        asked = safe_url(bridge.url).rstrip("/") + path
        # At EXESDB_HTTP_ADDR's address no https:// can be typed: the web config sets the scheme.
        mend = (
            "set EXESDB_WEB_CONFIG_FILE to the web config the bridge runs with (then https, its"
            " certificate trusted)"
            if bridge.source.at_address
            else "use https:// (and --cacert for a private CA)"
        )
        print(f"exesdb-bridge: {asked} answered 400: this port speaks TLS: {mend}", file=sys.stderr)
    elif answer is None:  # a page, not the bridge's refusal
        refused = bridge.not_a_bridge(path, BRIDGE_ANSWER, status)
        print(f"exesdb-bridge: {refused}", file=sys.stderr)
    else:
        asked = safe_url(bridge.url).rstrip("/") + path
        said = _refusal_words(answer)
        if answer["error"] == "admin_disabled":  # this shell has a token; the bridge has none
            said += (
                "; EXESDB_ADMIN_TOKEN set here is what the commands send: the bridge needs it too"
            )
        elif answer["error"] == "ingest_disabled":  # set in this shell, it turns on nothing
            said += "; EXESDB_INGEST is the bridge's setting: start the bridge with it"
        elif answer["error"] == "not_found" and (root := url_root(bridge.url)) is not None:
            # A bridge answered, at a path it does not serve: the one the URL itself ends in.
            said += (
                "; the URL given has a path, and the bridge's own paths go after it: a bridge"
                f" served at its root is {safe_url(root)} (--url, EXESDB_URL)"
            )
        if status == 401 and "basic_auth_users" in text:  # the web config's, not the token's
            # One sentence in place of the bridge's words, which say the same in general.
            said = (
                "the bridge asks for one of its basic_auth_users: --user USER[:PASSWORD] sends it"
                if bridge.basic_auth is None
                else "the user and password given are not one of the bridge's basic_auth_users"
            )
        if bridge.source is Source.DEFAULT and str(answer["error"]) in _ANOTHER_BRIDGE_CODES:
            said += _AT_DEFAULT
        print(f"exesdb-bridge: {asked} answered {status}: {said}", file=sys.stderr)


def _refusal_words(answer: dict[str, Any]) -> str:
    """The bridge's JSON refusal (docs/http-api.md#errors) as a person reads it: its sentence,
    then the code and the field at fault in brackets, on one line (``on_one_line``: a server's
    control characters, a line break or an escape sequence clearing the screen, are shown as
    their escapes, never sent to the terminal)."""
    error = str(answer["error"])
    detail = answer.get("detail")
    field = answer.get("field")
    code = error if field is None else f"{error}, field {field}"
    return on_one_line(f"{detail} ({code})" if detail else code)
