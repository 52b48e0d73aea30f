"""How the client commands (``publish``, ``tail``, ``alerts``) reach a running bridge.

The bridge is at ``--url``, else ``EXESDB_URL``, else the address it listens on
(``EXESDB_HTTP_ADDR``, a wildcard host asked on loopback), over https when the web config file
(``EXESDB_WEB_CONFIG_FILE``, read only then, its key not) turns TLS on:
``bridge.client_environment.Location``.
That address is asked trusting the file's own certificate alone, as the health check asks it;
``--cacert`` trusts a CA of one's own for https instead; ``--user`` (or a ``user:password@`` in
the URL) sends basic auth, and then the admin token travels in ``X-ExESDB-Admin-Token`` since
``Authorization`` is taken. Answers come back as (status, text), status 0 when nothing answered.

Requests are made with the standard library (``bridge.cli.exchange``), redirects followed, an
answer read to ``MOST_ANSWER`` bytes at most and a command's answers to ``MOST_IN_ALL``, and
nothing is ever sent twice: the command line builds its parser with this module's argument
types, and no command pays for aiohttp to send a request or two.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import ConfigError
from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.probe_settings import DEFAULT_HTTP_ADDR, split_addr
from bridge.redaction import redact_urls, safe_url
from bridge.urls import (
    PICKED_PORT,
    http_url_problem,
    own_url,
    require_bridge_url,
    split_userinfo,
    url_meant,
)

if TYPE_CHECKING:
    import ssl
    from contextlib import AbstractContextManager

    from bridge.cli.exchange import CutShort, Streamed, TooLarge, Unreachable
    from bridge.client_environment import Location
    from bridge.webconfig.schema import TLSServerConfig

__all__ = [
    "MOST_ANSWER",
    "MOST_IN_ALL",
    "STREAM_SILENCE",
    "TIMEOUT",
    "Located",
    "Source",
    "Target",
    "locate",
    "target",
    "url_argument",
    "user_argument",
]

TIMEOUT: Final = 10.0
# How long the message stream may send nothing before its connection is taken for lost: three
# times the 15 s after which a bridge sends a keep-alive line while no message comes.
STREAM_SILENCE: Final = 45.0
# The most of one answer a command reads: GET /v1/alerts's 10 000 alerts of a state at some 6 kB
# each (a bridge's are some 1 kB: labels, title, description). Parsed, an answer takes some
# five times its size in memory.
MOST_ANSWER: Final = 64 << 20
# The most a command reads of all its answers together: ``alerts list``'s two at their most (the
# firing and the acknowledged alerts, both held until printed: some 400 MB of memory then).
MOST_IN_ALL: Final = 128 << 20
# The bridge's own paths (docs/http-api.md), which a URL copied from a request or a browser ends
# in: the commands add them to the URL given, and would ask /v1/messages/v1/messages.
_BRIDGE_PATH: Final = re.compile(
    r"(?:/v1(?:/(?:messages|alerts(?:/[^/]+/ack)?|stream|integration))?"
    r"|/healthz|/readyz|/metrics|/alerts(?:/[^/]+)?)/*$"
)


class Source(Enum):
    """Where the bridge's URL came from, which a message that it cannot be found there names:
    each is mended in its own place. ``DEFAULT`` is EXESDB_HTTP_ADDR not set, whatever address
    a shell that sets it names (the default's too): only a shell without it asks wherever any
    bridge started without the setting listens, not where its own bridge was started."""

    URL_OPTION = "--url"
    URL_VARIABLE = "EXESDB_URL"
    HTTP_ADDR = "EXESDB_HTTP_ADDR"
    DEFAULT = "EXESDB_HTTP_ADDR's default"

    @property
    def at_address(self) -> bool:
        """Whether the URL is the address the bridge listens on (neither --url nor EXESDB_URL
        given), whose scheme EXESDB_WEB_CONFIG_FILE sets."""
        return self in (Source.HTTP_ADDR, Source.DEFAULT)


# What a message that the bridge cannot be found at its URL adds: where that URL came from, and
# where else one is given.
_WHERE_FROM: Final = {
    Source.URL_OPTION: "from --url",
    Source.URL_VARIABLE: "from EXESDB_URL; --url names another",
    Source.HTTP_ADDR: "from EXESDB_HTTP_ADDR; --url or EXESDB_URL names another",
    Source.DEFAULT: (
        "EXESDB_HTTP_ADDR's default, EXESDB_HTTP_ADDR not set here: a bridge started with it set"
        " listens where it says; set the same here, or give --url or EXESDB_URL"
    ),
}


@dataclass(frozen=True)
class Located:
    """Where the bridge is (``locate``): its URL, where that came from, and the web config's
    ``tls_server_config`` when that URL is the bridge's own address over https, the file read
    to find it: the certificate that address serves is the file's."""

    url: str
    source: Source
    tls: TLSServerConfig | None = None


def locate(settings: Location, given: str | None = None) -> Located:
    """``given`` (``--url``), else ``EXESDB_URL``, else the address of ``EXESDB_HTTP_ADDR``,
    https when ``EXESDB_WEB_CONFIG_FILE`` turns TLS on (ConfigError for port 0, the port the
    bridge picked being known to it alone, and for a web config file the bridge would refuse)."""
    if given:
        return Located(given.rstrip("/"), Source.URL_OPTION)
    if settings.url:
        if (problem := _bridge_path_problem(settings.url)) is not None:
            raise ConfigError([f"EXESDB_URL: {problem}"])
        return Located(settings.url, Source.URL_VARIABLE)
    host, port = settings.listen
    if port == 0:
        raise ConfigError([f"EXESDB_HTTP_ADDR: {PICKED_PORT}; give it with --url or EXESDB_URL"])
    tls = _served_tls(settings.web_config_file)
    # Where the address came from, not its value: one set to the default's is where it was set.
    source = Source.DEFAULT if settings.http_addr is None else Source.HTTP_ADDR
    return Located(own_url(host, port, tls=tls is not None), source, tls)


def _served_tls(web_config_file: str | None) -> TLSServerConfig | None:
    """The web config file's ``tls_server_config`` when it turns TLS on, else None;
    ConfigError naming the variable and each problem of a file the bridge would refuse
    (whether it serves https is not known then), but for its key and client CA files, which are
    not read: only the bridge needs them, and the key may be its user's alone."""
    if not web_config_file:
        return None
    from bridge.webconfig.loading import judge  # only with a web config: not light

    judged = judge(Path(web_config_file), server_files="none")
    if judged.loaded is None:
        # Redacted as the settings' own checks are: a path, a file's problem, may hold anything.
        raise ConfigError(
            [redact_urls(f"EXESDB_WEB_CONFIG_FILE: {problem}") for problem in judged.problems]
        )
    return judged.loaded.config.tls


def url_argument(text: str) -> str:
    """An argparse type: an http:// or https:// URL with a host (usage error otherwise), the
    example in the error the URL meant, else the one the command asks without ``--url``."""
    problem = http_url_problem(text)
    if problem is not None:
        meant = url_meant(text) or _url_without_option()
        raise argparse.ArgumentTypeError(f"{problem}, e.g. {meant}")
    try:
        url = require_bridge_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if (problem := _bridge_path_problem(url)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return url


def _bridge_path_problem(url: str) -> str | None:
    """Why ``url`` is no bridge's base URL: it ends in one of the bridge's own paths, which the
    commands add to it (``/v1/messages`` would be asked at ``/v1/messages/v1/messages``); None
    for any other (a path before them is a prefix a proxy may serve the bridge under)."""
    path = urlsplit(url).path
    found = _BRIDGE_PATH.search(path)
    if found is None:
        return None
    base = urlunsplit(urlsplit(url)._replace(path=path[: found.start()]))
    return (
        f"ends in the bridge's path {found[0].rstrip('/')}, which the commands add themselves:"
        f" give the bridge's base URL (scheme://host:port, and any prefix a proxy serves it"
        f" under), e.g. {safe_url(base)}"
    )


def _url_without_option() -> str:
    """The address ``EXESDB_HTTP_ADDR`` names as a URL: in a shell set up with another port (the
    README's), that port; the default address's when the variable names none a command could
    ask. ``EXESDB_URL`` is left out (it may hold a password), and so is the web config file,
    read only when the address is asked (docs/cli.md#finding-the-bridge)."""
    from bridge.client_environment import BridgeAddress, read_plainly

    # None for a value the settings would refuse, as they refuse it (ConfigError) elsewhere.
    found = read_plainly(BridgeAddress, os.environ)
    host, port = ("", 0) if found is None else found.listen
    if port == 0:
        host, port = split_addr(DEFAULT_HTTP_ADDR)
    return own_url(host, port)


def user_argument(text: str) -> tuple[str, str | None]:
    """An argparse type: ``USER:PASSWORD``, or ``USER`` (the password is then asked for)."""
    user, colon, password = text.partition(":")
    if not user:
        raise argparse.ArgumentTypeError("must be USER:PASSWORD or USER")
    return user, password if colon else None


@dataclass(frozen=True)
class Target:
    """A bridge to talk to: its base URL, the TLS context for https, basic auth credentials, and
    the most of its answers to one command that is read: ``most_answer`` bytes of each,
    ``most_in_all`` of them together."""

    url: str
    ssl_context: ssl.SSLContext | None = None
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    # Whether ``ssl_context`` trusts the web config's own certificate alone (``target``).
    pinned: bool = field(default=False, repr=False)
    # Where ``url`` came from (``locate``), named when the bridge cannot be found there.
    source: Source = field(default=Source.URL_OPTION, repr=False)
    most_answer: int = field(default=MOST_ANSWER, repr=False)
    most_in_all: int = field(default=MOST_IN_ALL, repr=False)
    # The bytes of answers read so far, in a list: the target is frozen, what it read is not.
    _read: list[int] = field(default_factory=lambda: [0], init=False, repr=False, compare=False)

    def admin_headers(self, token: str) -> dict[str, str]:
        """The header carrying the admin token: ``Authorization`` unless basic auth has it."""
        if self.basic_auth is not None:
            return {ADMIN_TOKEN_HEADER: token}
        return {"Authorization": f"Bearer {token}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, str]:
        """One request to ``path``, redirects followed; (status, text), or (0, why) when
        nothing answered, its answer broke off (``bridge.cli.exchange``; never sent twice) or
        held more than is read (``most_answer``, or what is left of ``most_in_all``)."""
        from bridge.cli import exchange

        asked = exchange.Request(
            self.url + path, method, self._headers() | (headers or {}), params, body
        )
        left = self.most_in_all - self._read[0]
        try:
            answered = exchange.send(
                asked, self.ssl_context, TIMEOUT, most=min(self.most_answer, left)
            )
        except exchange.Unreachable as exc:
            return 0, self.unreachable(exc)
        except exchange.CutShort as exc:
            return 0, self.cut_short(exc, method)
        except exchange.TooLarge as exc:
            return 0, self._too_large(exc, in_all=left < self.most_answer)
        except TimeoutError:  # connecting or answering, as aiohttp's total timeout
            return 0, self.silent()
        self._read[0] += answered.size
        return answered.status, answered.text

    def stream(
        self, path: str, *, headers: dict[str, str], params: dict[str, str]
    ) -> AbstractContextManager[Streamed]:
        """``GET path``: its answer once the head has come, a 200's body then read without a
        deadline but for ``STREAM_SILENCE`` seconds without a byte, another's text read by it
        (``bridge.cli.exchange.stream``, raising as it does)."""
        from bridge.cli import exchange

        asked = exchange.Request(self.url + path, "GET", self._headers() | headers, params)
        return exchange.stream(asked, self.ssl_context, TIMEOUT, idle=STREAM_SILENCE)

    def _headers(self) -> dict[str, str]:
        """The headers every request carries: basic auth, when given."""
        if self.basic_auth is None:
            return {}
        pair = ":".join(self.basic_auth).encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def silent(self) -> str:
        """What to say when the bridge took the connection but did not answer in time."""
        return (
            f"the bridge at {safe_url(self.url)} did not answer within {TIMEOUT:g} s: it is"
            f" stuck or overloaded, or another program holds that port ({self._where_from()})"
        )

    def unreachable(self, exc: Unreachable) -> str:
        """Why nothing answered (``exc``, from ``bridge.cli.exchange``), and what to check."""
        where = self._where(exc.redirected)
        if exc.tls:
            # Imported here: it imports ssl, which a command needs only once it connects.
            from bridge.httpclient.reasons import NO_TLS_ANSWER, NOT_ITS_NAME, OUT_OF_DATE

            # OpenSSL's answer to a plain-http server, or a trusted certificate for another
            # name: no CA would help.
            if NO_TLS_ANSWER.search(exc.reason):
                hint = (
                    "the bridge may serve plain http: use http:// unless its web config turns"
                    " TLS on"
                )
            elif NOT_ITS_NAME.search(exc.reason):
                hint = (
                    "its certificate is not for the host asked: give --url (or EXESDB_URL) a"
                    " host name or address its certificate holds"
                )
            elif OUT_OF_DATE.search(exc.reason):
                # The web config's own certificate, pinned, too: it is the one served.
                hint = (
                    "its certificate is out of its dates: renew it, or set this machine's clock"
                    " right; trusting another CA would not help"
                )
            elif self.pinned:
                hint = (
                    "it serves another certificate than EXESDB_WEB_CONFIG_FILE's, the one"
                    " trusted here: is that the web config of the bridge at this address?"
                    " --cacert names a CA to trust instead"
                )
            else:
                hint = "--cacert names a CA to trust"
            return f"TLS with {where} failed: {exc.reason} ({hint})"
        return f"cannot reach the bridge at {where}: {exc.reason} ({self._where_from()})"

    def cut_short(self, exc: CutShort, method: str) -> str:
        """What to say when the answer to ``method`` broke off (``exc``): the bridge had the
        request, and may have taken it, so it is not sent again."""
        size = f"{exc.received} of its {exc.expected}" if exc.expected else f"{exc.received}"
        said = f"the answer from {self._where(exc.redirected)} was cut short after {size} bytes"
        if method == "GET":
            return f"{said} (the bridge stopped, or the connection was lost)"
        return f"{said}: the request may have been taken, so check before sending it again"

    def _too_large(self, exc: TooLarge, *, in_all: bool) -> str:
        """What to say when an answer (``exc``) held more than is read of it: ``in_all``, more
        than the answers before it left of what a command reads."""
        where = self._where(exc.redirected)
        said = (
            f"the answers from {where} held more than {_mib(self.most_in_all)} in all, the most"
            " a command reads"
            if in_all
            else f"the answer from {where} held more than {_mib(self.most_answer)}, the most a"
            " command reads of one answer"
        )
        return f"{said}: the rest was left unread: is a bridge there? ({self._where_from()})"

    def _where(self, redirected: str | None) -> str:
        """The bridge's URL as shown, and the one a redirect led to when it did."""
        shown = safe_url(self.url)
        return shown if redirected is None else f"{shown} (redirected to {safe_url(redirected)})"

    def not_a_bridge(self, path: str, what: str, status: int = 200) -> str:
        """What to say when ``path`` answered ``status`` without ``what`` (another server
        there, or a proxy's page)."""
        asked = safe_url(self.url).rstrip("/") + path
        return (
            f"{asked} answered {status} but not with {what}: is a bridge there?"
            f" ({self._where_from()})"
        )

    def _where_from(self) -> str:
        """Where the URL came from, and where else one is given (``_WHERE_FROM``)."""
        return _WHERE_FROM[self.source]


def _mib(size: int) -> str:
    """``size`` bytes in MiB, as the limits are said."""
    return f"{size / (1 << 20):g} MiB"


def _ask_password(name: str) -> str:
    """The password of ``--user NAME``, asked on the terminal, else read from stdin (ConfigError
    when neither gives one: a script's empty or closed stdin)."""
    import warnings

    with warnings.catch_warnings():
        # Without a terminal getpass says "Password input may be echoed" itself; its Python
        # warning would add a line of its source beside it.
        warnings.simplefilter("ignore", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"password for {name}: ")
        except KeyboardInterrupt:
            _end_prompt_line()
            raise
        except EOFError:
            pass
        except AttributeError:
            # A closed stdin (``<&-``) is None, which getpass reads without a check.
            if sys.stdin is not None:
                raise
    # The prompt was written, its line left open: the refusal goes on a line of its own.
    _end_prompt_line()
    raise ConfigError(
        [
            f"--user {name}: no password given, and none could be asked for (no terminal,"
            f" and stdin ended): give it as --user {name}:PASSWORD"
        ]
    )


def _end_prompt_line() -> None:
    """End the password prompt's line, where getpass wrote it (the terminal, else stderr): Ctrl-C
    or the end of stdin at the prompt echoes nothing, and what follows would go on that line."""
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write("\n")
    except OSError:
        sys.stderr.write("\n")


def target(
    settings: Location,
    *,
    url: str | None = None,
    cacert: str | None = None,
    user: tuple[str, str | None] | None = None,
) -> Target:
    """The bridge the command line and the environment point at (ConfigError for a CA file
    that cannot be read, and as ``locate`` says)."""
    context = None
    if cacert is not None:
        import ssl  # here: outbox and --help build the parser with this module, and use no TLS

        from bridge.tlsutil import ca_file_refusal

        try:
            context = ssl.create_default_context(cafile=cacert)
        except ssl.SSLError:
            # No certificate, or a damaged one: said as examples/sign.py says it, not by
            # OpenSSL's code and source line ("PEM lib" for each).
            raise ConfigError([f"--cacert {cacert}: {ca_file_refusal(cacert)}"]) from None
        except OSError as exc:  # no such file, a directory, not one this user may read
            raise ConfigError([f"--cacert {cacert}: {exc.strerror or exc}"]) from None
    located = locate(settings, url)
    pinned = False
    if located.tls is not None and context is None:
        # The bridge's own address, found with its web config: the certificate it serves is
        # that file's, trusted alone as the health check trusts it (a self-signed one too, for
        # whatever names it holds); --cacert asks for a CA's verification instead.
        context = _own_certificate(located.tls)
        pinned = context is not None
    # A user:password@ in the URL is basic auth, as curl takes it: aiohttp would refuse to send
    # it beside the admin token's Authorization.
    found, auth = split_userinfo(located.url)
    if user is not None:
        name, password = user
        if password is None:
            password = _ask_password(name)
        auth = (name, password)
    return Target(found, context, auth, pinned=pinned, source=located.source)


def _own_certificate(tls: TLSServerConfig) -> ssl.SSLContext | None:
    """A context trusting the certificate ``tls`` names alone; None (the system's CAs) when
    it cannot be read now, changed since the file was judged: a failure's line then names
    --cacert."""
    import ssl

    from bridge.cli.healthcheck import own_certificate_context

    try:
        return own_certificate_context(tls)
    except (ssl.SSLError, OSError):
        return None
