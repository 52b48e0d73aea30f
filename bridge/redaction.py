"""How the bridge shows what may hold a secret: URLs, credentials in text, keys naming a secret.

Everywhere the bridge shows text it did not write (logs, errors, ``/readyz``, ``check-config``,
the pages, alert annotations) it goes through here. A URL is shown as its origin
(scheme, host, port), ``user:<redacted>@`` when the URL carries credentials (``<redacted>@`` for a
user name alone, often a token), and ``/…`` when it has a path or query (webhook paths often hold
tokens) or anything past its host, e.g. ``https://alice:<redacted>@hooks.example:8443/…``, but for
the public source repository the bridge's own words cite (``bridge.source_repository``), whole;
where alerts go is shown on the pages without the user info or its marker (``safe_url``'s
``userinfo``: open to anyone who reaches the port, they name no user). Nothing else is dropped
without a marker; punctuation a sentence puts after a URL stays the sentence's. In free
text (``redact_urls``) a ``user:password@`` outside a well-formed URL (``redis:/default:pw@host``,
``alice:pw@host:6379``) has its password redacted too, unless it reads as a label before an Erlang
node name (``node:ex_esdb@host``); so has what follows ``Bearer`` when it reads as a token ("the
bearer of news" stays) or ``Basic`` when it is what Basic sends, and the value of a ``name=value``
pair, a quoted ``"name": value`` or a header ``Name: value`` whose name may name a secret
(``names_secret``: ``?token=…``, ``Password=hunter2;``, ``Authorization: Bearer …``; a name after a
word and a space is judged with the word, so ``partition key=7`` stays). In a span's ``url.full``
the user info is ``REDACTED:REDACTED@``, the form OpenTelemetry's semantic conventions give it
(``span_url``). Free text is read to ``MAX_READ`` characters, once (in time linear in its length).
A value an error quotes back (an unknown field's name) is cut short (``clipped``), so that the
error is never as large as what was sent. A server's answer that quotes back what the bridge sent
it has what of that may be a secret hidden (``redact_sent``): the path it was sent to, as ``/…``,
and the values of the headers that may hold one (a signature, ``Authorization``), each word of
them too, as ``<redacted>``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping, Sequence, Set
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit

from bridge.source_repository import SOURCE_REPOSITORY

__all__ = [
    "MAX_READ",
    "REDACTED",
    "at_past_host",
    "clipped",
    "names_secret",
    "redact_sent",
    "redact_urls",
    "safe_bus_url",
    "safe_otlp_endpoint",
    "safe_url",
    "safe_url_or_key",
    "span_url",
]

REDACTED: Final = "<redacted>"
# How much of a text redact_urls reads: what is shown is an error, a value or a reason, never
# more than a few lines (a log line too), and a long text costs the event loop time even when
# read once (before then, 48 KB of ``a/:`` took 1.5 s).
MAX_READ: Final = 4096
# Where the last run of a text cut short starts (after its last separator).
_BEFORE_LAST_RUN: Final = re.compile(r"[\s@,'\"](?=[^\s@,'\"]*\Z)")
# The semantic conventions' url.full: "https://REDACTED:REDACTED@www.example.com/".
_SPAN_USERINFO: Final = "REDACTED:REDACTED@"
# A password may hold a comma or a quote (allowed unencoded in user info): the user info runs
# to the last ``@`` before the path; the rest of the URL stops at a comma or a quote. Each pattern
# starts only where a run of its characters starts (the look-behinds), so that a long text
# without a match is read once, not again from each of its characters.
_URL: Final = r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s/?#]*@)?[^\s,'\"]+"
# What ends a URL in a sentence but is not of it (_without_trailing_punctuation), and the
# bracket each closing one closes.
_TRAILING: Final = frozenset(".:;!?)]>")
_SCHEME_ALONE: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_OPENING: Final = {")": "(", "]": "[", ">": "<"}
# An HTTP authorization's credentials after their scheme (RFC 9110 token68), in any letter case;
# after ``Basic`` only when they are what Basic sends, so that "a basic check" stays as it is,
# after ``Bearer`` only when they read as a token (_credentials), so that "the bearer of news"
# does too.
_AUTH_SCHEMES: Final = r"(?i:bearer|basic)"
_CREDENTIALS: Final = rf"\b(?P<scheme>{_AUTH_SCHEMES})\s+(?P<credentials>[A-Za-z0-9._~+/-]+=*)"
# A named value: ``name=value`` (a query, a connection string, ``--password=…``), ``"name":
# value`` (JSON) or ``Name: value`` (a header: ``Authorization`` or a name with a hyphen;
# ``token: expired`` in a sentence is none); names_secret judges the name, and only then is its
# value read (_VALUE).
_PAIR: Final = (
    r"(?<![\w.-])(?:(?P<quote>[\"'])(?P<quoted>\w[\w.-]*)(?P=quote)\s*[:=]"
    r"|-*(?P<header>(?i:authorization)|\w+(?:-\w+)+)\s*:"
    r"|-*(?P<key>\w[\w.-]*)\s*=)\s*"
)
_SHOWN: Final = re.compile(f"(?P<url>{_URL})|(?P<pair>{_PAIR})|(?P<auth>{_CREDENTIALS})")
# The word a pair's name ends a phrase with, when a space is all that parts them (``partition
# key=7`` names a partition key): judged with the name, as names_secret judges PARTITION_KEY.
_WORD_BEFORE: Final = re.compile(r"(?<!\S)(\w+)[ \t]+\Z")
# How far back a pair's phrase (a longer word is taken for none: fail closed) and the ``=`` or
# ``:`` a ``Bearer`` is given after are looked for.
_PHRASE_READ: Final = 64
# Credentials after ``Bearer`` that read as a token rather than a word: a digit or a token68
# character no word holds, or a capital after the first letter (``eyJhbGciOi``).
_TOKEN_LIKE: Final = re.compile(r"[0-9._~+/=-]|.[A-Z]")
# Credentials of 20 characters or more read as a token whatever they hold.
_TOKEN_LENGTH: Final = 20
# A pair's value: quoted (to the end of the text when the quote is not closed), or running to a
# space, ``&`` or ``;``; an authorization's scheme before it stays shown.
_VALUE: Final = re.compile(
    rf"(?:(?P<scheme>{_AUTH_SCHEMES}|(?i:token|digest|negotiate))\s+)?"
    r"(?P<quote>[\"']?)(?:(?<=\")(?:[^\"\\]|\\[\s\S])*(?:\"|\\?\Z)|(?<=')[^']*(?:'|\Z)"
    r"|(?<![\"'])[^\s&;'\"]+)"
)
# ``user:password@`` outside a well-formed URL is found from its ``@`` (not by a pattern
# scanning ahead from each colon, which took time growing with the square of a run of ``a/:``):
# the run of text that ends in it (_AT_RUN, each character read once), then the user
# name in that run (_NAME: from the run's start or after a ``/``, ``=``, ``;``, ``&`` or ``?``,
# to a colon). One form is not a password (_userinfo): a label that names a node before an
# Erlang node name (``node:ex_esdb@host``): a word ending in node, leader, peer or member
# (_LABEL), a colon, a node's name (_NODE_NAME) and a host name with no port or path
# (_NODE_HOST), unless a scheme typed without its ``//`` comes before it (``redis//u:pw@host``).
# Any other label fails closed: ``admin:hunter2@db`` may be credentials.
_AT_RUN: Final = re.compile(r"(?<![^\s@,'\"])[^\s@,'\"]*@")
_NAME: Final = re.compile(r"(?<![^\s/@,'\"=;&?])[^\s:/@,'\"=;&?]*:")
# What an Erlang node's name (before its ``@``) is made of, and a label before one.
_NODE_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_LABEL: Final = re.compile(r"(?i:(?:\w[\w.-]*[_.-])?(?:node|leader|peer|member)s?)")
_SCHEME_SLASHES: Final = re.compile(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*(?::/|//)/*\Z")
# A node's host, then neither a port nor a path (a URL's host has one, or is none of these).
_NODE_HOST: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*+(?!/|:[0-9])")
# Text none of the patterns can match (no ``@``, ``=``, ``://``, auth scheme, quoted or
# hyphenated name before a colon) is shown as it is without running them: most log lines.
_NAMED_BEFORE_COLON: Final = re.compile(r"[\"']\s*:|-\w+\s*:")
# What no host name holds: the host shown ends before any character but a letter, digit, ``.``,
# ``-`` or ``_`` (``db;password=…`` of a JDBC URL; ``hooks.example\services\T0\<token>``, a
# path typed with backslashes, which a browser reads as slashes and urlsplit as the host's).
_NOT_HOST: Final = re.compile(r"[^\w.-]")
# The host of a URL shown without it (``redis://<redacted>@…``), shown again as it is.
_HOST_NOT_SHOWN: Final = "…"
# Where versions before cut a host (RFC 3986's sub-delims only): ``safe_url``'s ``as_before``.
_NOT_HOST_BEFORE: Final = re.compile(r"[!$&'()*+,;=]")

_REDIS_SCHEMES: Final = frozenset({"redis", "rediss"})
# A Redis URL's path when it is a database number (safe_bus_url).
_REDIS_DATABASE: Final = re.compile(r"/[0-9]{1,5}")


# A webhook receiver's outbox key (bridge.receiver_keys): a URL as safe_url shows it, ``#`` and
# a keyed digest, which tells receivers on one origin apart and holds no secret.
_RECEIVER_KEY: Final = re.compile(r"(.+)#([0-9a-f]{16})")


def clipped(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, its last an ellipsis, when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url_or_key(url: str, *, userinfo: bool = True) -> str:
    """``url`` as ``safe_url`` shows it; a receiver's outbox key (already shown safely, with its
    digest) as it is, wherever it appears (a log line, ``outbox list``); ``userinfo`` as
    ``safe_url`` takes it (False: the key's URL without its user info, digest kept)."""
    key = _RECEIVER_KEY.fullmatch(url)
    if key is not None and safe_url(key.group(1)) == key.group(1):
        if userinfo:
            return url
        return f"{safe_url(key.group(1), userinfo=False)}#{key.group(2)}"
    return safe_url(url, userinfo=userinfo)


def safe_url(
    url: str, *, lone_user: bool = False, as_before: bool = False, userinfo: bool = True
) -> str:
    """``url`` as it may be shown: origin, a credentials marker and a path marker.

    An ``@`` past the host (in the path, query or fragment) makes the URL ambiguous: a password
    holding an unencoded ``/``, ``?`` or ``#`` runs to it (``redis://u:pa/ss@host``), and what
    reads as the host may be a piece of it. Such a URL is shown as ``redis://<redacted>@…``.

    The host runs to the first character no host name holds (``db;password=…``, a backslash):
    what follows it may be a path, and is shown as ``/…``.

    ``lone_user`` shows a user name alone as earlier versions did (``https://name:<redacted>@``),
    ``as_before`` an ambiguous URL as versions before this reading did (its host as read before
    the first ``/``, ``?`` or ``#``), and a host cut only where they cut it (at ``;``, ``=`` and
    the rest of RFC 3986's sub-delims), each only to find the outbox keys they made.

    ``userinfo`` False leaves the user info out, its marker too (``https://hooks.example:8443/…``,
    an ambiguous URL ``redis://…``): the pages show origins so, since a user name may be a token
    and they are open to anyone who reaches the port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "<not a URL>"
    if not parts.scheme or not parts.netloc:
        return "<not a URL>"
    if not as_before and at_past_host(parts):
        # Neither host can be shown: the one before the first "/" may be the password's start,
        # the one after the last "@" a piece of the path (which may hold a token).
        return f"{parts.scheme}://{REDACTED}@…" if userinfo else f"{parts.scheme}://…"
    host = parts.hostname or ""
    more = bool(parts.path.strip("/") or parts.query)
    if ":" in host:
        host = f"[{host}]"
    elif host != _HOST_NOT_SHOWN and (
        end := (_NOT_HOST_BEFORE if as_before else _NOT_HOST).search(host)
    ):
        host, more = host[: end.start()], True
    user = ""
    if userinfo and parts.password is not None:
        user = f"{parts.username or ''}:{REDACTED}@"
    elif userinfo and parts.username is not None:
        # A name alone is often the token itself (Sentry-style DSNs).
        user = f"{parts.username}:{REDACTED}@" if lone_user else f"{REDACTED}@"
    port_part = f":{port}" if port else ""
    rest = "/…" if more else ""
    return f"{parts.scheme}://{user}{host}{port_part}{rest}"


def safe_otlp_endpoint(endpoint: str) -> str:
    """An OTLP endpoint as it may be shown: a URL as ``safe_url`` shows it; one the gRPC
    exporter dials as it is, no URL with a host (``127.0.0.1:4317``, ``collector``,
    ``unix:/run/otel.sock``, ``dns:///collector:4317``), whole: it holds no credentials (the
    checks at start refuse a ``user:password@`` there), unless it has an ``@``, a ``?`` or a
    ``#`` (then ``<not a URL>``, as ``safe_url`` says)."""
    shown = safe_url(endpoint)
    value = endpoint.strip()
    if shown != "<not a URL>" or not value:
        return shown
    if any(c in "@?#" or c.isspace() or not c.isprintable() for c in value):
        return shown
    return clipped(value)


def at_past_host(parts: SplitResult) -> bool:
    """Whether a URL has an ``@`` past its host (in its path, query or fragment): its host and
    port may then be pieces of a password (``safe_url``), to be shown nowhere."""
    return "@" in f"{parts.path}{parts.query}{parts.fragment}"


def safe_bus_url(url: str) -> str:
    """A Redis URL (``EXESDB_BUS``) as ``safe_url`` shows it, but with its database number shown
    (a path of digits alone, as redis-py reads it: no secret), its query still as ``?…``:
    ``redis://default:<redacted>@redis:6379/2``."""
    shown = safe_url(url)
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return shown
    if (
        parts.scheme not in _REDIS_SCHEMES
        or _REDIS_DATABASE.fullmatch(parts.path) is None
        or parts.fragment
        or _NOT_HOST.search(parts.hostname or "") is not None  # a host safe_url cut short
        or not shown.endswith("/…")
    ):
        return shown
    return f"{shown.removesuffix('/…')}{parts.path}{'?…' if parts.query else ''}"


def span_url(url: str) -> str:
    """``url`` as a span's ``url.full``: ``safe_url``'s form, any user name and password as
    ``REDACTED:REDACTED@`` (url.full must hold neither; the conventions say how to mark them)."""
    shown = safe_url(url)
    scheme, found, rest = shown.partition("://")
    if not found or "@" not in rest:
        return shown
    return f"{scheme}://{_SPAN_USERINFO}{rest.rpartition('@')[2]}"


# Headers a request sends that never hold a secret (lower case): the others' values (the
# signature, Authorization, an http_headers entry) are hidden when an answer quotes them.
_HEADERS_WITHOUT_SECRETS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "host",
        "user-agent",
    }
)
# A header value's words (``Bearer <token>``, ``t=<time>,v1=<MAC>``): those this long or longer,
# but numbers (the signature's time), are credentials an answer may quote on their own.
_VALUE_WORDS: Final = re.compile(r"[\s,;=:]+")
_SECRET_WORD: Final = 8


def redact_sent(
    text: str, urls: Sequence[str], headers: Mapping[str, str], *, shown: Set[str] = frozenset()
) -> str:
    """``text``, a server's answer to a request to ``urls`` (the one given, the one a redirect
    led to) with ``headers``, with what the request sent that may be a secret hidden, should
    the answer quote it: each URL's path of more than a ``/``, escaped or not (and without its
    leading ``/`` when it has more than one segment: Django's "The current path, services/…"),
    as ``/…`` (``…``), as ``safe_url`` shows it (Express's 404, "Cannot POST /services/…"; a
    webhook's path is often its key); the value of each header but ``shown`` (by name) and
    those that never hold one, whole and each word of it, of ``_SECRET_WORD`` characters or
    more but a number (the signature's MAC, not its time; an Authorization's credentials), as
    ``<redacted>``. A ``\\/`` in ``text`` is read as the ``/`` it stands for in JSON (PHP's
    json_encode, Symfony's JsonResponse escape each), so that what it quotes is found."""
    text = text.replace("\\/", "/")
    paths: set[str] = set()
    for url in urls:
        path = urlsplit(url).path.rstrip("/")
        for form in (path, unquote(path)):
            if form.strip("/"):
                paths.add(form)
                if "/" in form.strip("/"):
                    paths.add(form.lstrip("/"))
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(path, "/…" if path.startswith("/") else "…")
    kept = _HEADERS_WITHOUT_SECRETS | {name.lower() for name in shown}
    hidden: set[str] = set()
    for name, value in headers.items():
        if name.lower() not in kept:
            words = [value.strip(), *_VALUE_WORDS.split(value)]
            hidden.update(w for w in words if len(w) >= _SECRET_WORD and not w.isdigit())
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_urls(text: str) -> str:
    """``text`` with every URL in it shown as ``safe_url`` shows it, the password of any other
    ``user:password@`` where a URL's user info stands (a URL mistyped without ``//``) as
    ``<redacted>``, so the credentials after ``Bearer`` or ``Basic``, and the value of a pair
    whose name may name a secret (the module docstring). A text longer than ``MAX_READ`` is read
    to there and ends in ``…``. Reading is linear in the text's length."""
    cut = len(text) > MAX_READ
    if cut:
        text = text[:MAX_READ]
        # A user:password@ cut before its @ reads as none: the run the cut falls in is left out
        # when it holds a colon (any other secret cut short still reads as one).
        before = _BEFORE_LAST_RUN.search(text)
        start = before.end() if before is not None else 0
        if ":" in text[start:]:
            text = text[:start]
    elif not _may_hold_secret(text):
        return text
    shown: list[str] = []
    at = 0
    # The next match of _SHOWN and the next user info, each looked for again only once ``at``
    # has passed its start (found from an earlier ``at``, it is still the first from this one).
    match = _SHOWN.search(text)
    runs = _AT_RUN.finditer(text)
    run = next(runs, None)
    userinfo = _userinfo(text, run.start(), run.end() - 1) if run is not None else None
    while True:
        if match is not None and match.start() < at:
            match = _SHOWN.search(text, at)
        while run is not None and (userinfo is None or userinfo[0] < at):
            if userinfo is not None and run.end() - 1 >= at:
                # A match ended inside the user info, before its @: the rest is read again.
                userinfo = _userinfo(text, at, run.end() - 1)
                if userinfo is not None:
                    break
            run = next(runs, None)
            userinfo = None if run is None else _userinfo(text, max(run.start(), at), run.end() - 1)
        # The user info first, unless a URL starts by its colon (``(http://u:pw@h/…``): any
        # other match inside it (``key=`` in a password ``cGFzc3dvcmQ=``) is the password's.
        if userinfo is not None and (
            match is None
            or (
                userinfo[0] <= match.start()
                and not (match.group("url") is not None and match.start() <= userinfo[1])
            )
        ):
            first, colon, at_sign = userinfo
            shown.append(text[at:first])
            shown.append(f"{text[first:colon]}:{REDACTED}@")
            at = at_sign + 1
            continue
        if match is None:
            break
        shown.append(text[at : match.start()])
        at = match.end()
        if match.group("url") is not None:
            url = _without_trailing_punctuation(match.group("url"))
            # A scheme alone, as a sentence names one ("EXESDB_BUS is redis://)"), holds nothing;
            # nor does the public repository the bridge's own words cite (cite_source), whole.
            harmless = _SCHEME_ALONE.fullmatch(url) or url == SOURCE_REPOSITORY
            shown.append(url if harmless else safe_url_or_key(url))
            at = match.start() + len(url)  # what follows it is read as text
        elif match.group("auth") is not None:
            if _credentials(text, match):
                shown.append(f"{match.group('scheme')} {REDACTED}")
            else:
                at = match.start("credentials")
                shown.append(text[match.start() : at])
        else:
            shown.append(match.group())
            # Only a secret's value is read: any other is read on (it may hold a URL, a token).
            if _names_secret_in(text, match) and (value := _VALUE.match(text, at)) is not None:
                name = match.group("quoted") or match.group("header") or match.group("key")
                shown.append(_hidden(value, name))
                at = value.end()
    shown.append(text[at:])
    if cut:
        shown.append("…")
    return "".join(shown)


def _without_trailing_punctuation(url: str) -> str:
    """``url`` without the punctuation a sentence puts after it (``Redis at redis://h:6379:
    refused``, ``see https://h/x.``, ``(at http://h:80)``), which would make its port
    unreadable (``<not a URL>``) or be shown as part of its path: the characters of
    ``_TRAILING``, a closing bracket only when the URL did not open it (``http://[::1]``)."""
    end = len(url)
    while end and url[end - 1] in _TRAILING:
        opening = _OPENING.get(url[end - 1])
        if opening is not None and url.count(opening, 0, end) >= url.count(url[end - 1], 0, end):
            break
        end -= 1
    return url[:end]


def _may_hold_secret(text: str) -> bool:
    """Whether any of redact_urls's patterns may match ``text`` (a quick look, for the many
    texts, log lines above all, that hold nothing to redact); True for text that is not ASCII,
    which case-insensitive matching reads more ways than ``lower`` does."""
    if "@" in text or "=" in text or "://" in text or not text.isascii():
        return True
    lower = text.lower()
    if "bearer" in lower or "basic" in lower or "authorization" in lower:
        return True
    return ":" in text and _NAMED_BEFORE_COLON.search(text) is not None


def _userinfo(text: str, start: int, at_sign: int) -> tuple[int, int, int] | None:
    """The ``user:password@`` ending at ``at_sign``, read from ``start`` (where its run or the
    part of it still to read starts), as the start of its user name, its colon and its ``@``;
    None when there is none, or when it reads as a label before an Erlang node name (the
    comment above _AT_RUN)."""
    name = _NAME.search(text, start, at_sign)
    if name is None or name.end() == at_sign:
        return None  # no colon, or no password after it
    first, colon = name.start(), name.end() - 1
    found = first, colon, at_sign
    if not _LABEL.fullmatch(text, first, colon) or not _NODE_NAME.fullmatch(
        text, colon + 1, at_sign
    ):
        return found  # no user name (``:pw@host``) or no label, or no node's name after it
    if not _NODE_HOST.match(text, at_sign + 1):
        return found  # no host name, or one with a port or a path (``u:pw@host:6379``)
    if first > start and _SCHEME_SLASHES.search(text, start, first):
        return found  # ``redis//user:password@host``
    return None


def _names_secret_in(text: str, pair: re.Match[str]) -> bool:
    """Whether ``pair``'s name may name a secret (``names_secret``), read with the word before
    it when a space is all that parts them: ``partition key=7`` names a partition key, as
    PARTITION_KEY does, ``api key=…`` an API key."""
    name = pair.group("quoted") or pair.group("header") or pair.group("key")
    if not names_secret(name):
        return False
    if pair.group("key") is None or pair.start("key") != pair.start():
        return True
    before = _WORD_BEFORE.search(text, max(0, pair.start() - _PHRASE_READ), pair.start())
    return before is None or names_secret(f"{before.group(1)} {name}")


def _credentials(text: str, auth: re.Match[str]) -> bool:
    """Whether the credentials ``auth`` found after its scheme are a credential. After
    ``Basic``: base64 of ``user:password`` (RFC 7617), padded or not. After ``Bearer``: a token
    (a digit, a token68 sign, a capital after the first letter, or ``_TOKEN_LENGTH``
    characters), or any word when the scheme stands where a value is given (after ``=`` or
    ``:``, ``note=Bearer abc``); "the bearer of news" holds none."""
    credentials = auth.group("credentials")
    if auth.group("scheme").casefold() == "basic":
        try:
            bare = credentials.rstrip("=")
            decoded = base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
        except ValueError:
            return False
        return b":" in decoded
    word = credentials.rstrip("._~+/=-")  # a sentence's full stop makes no token
    if len(word) >= _TOKEN_LENGTH or _TOKEN_LIKE.search(word):
        return True
    given = text[max(0, auth.start() - _PHRASE_READ) : auth.start()].rstrip(" \t\"'")
    return given.endswith(("=", ":"))


def _hidden(value: re.Match[str], name: str) -> str:
    """A secret's value as shown: ``<redacted>``, in the value's quotes, after an
    authorization's scheme."""
    scheme = value.group("scheme")
    shown = f"{scheme} " if scheme and name.casefold().endswith("authorization") else ""
    quote = value.group("quote")
    return f"{shown}{quote}{REDACTED}{quote}"


def _readable(key: str) -> str | None:
    """``key`` as it reads in plain ASCII (compatibility forms such as full-width letters
    folded by NFKD, accents dropped), or None when it holds anything else: another script, a
    look-alike of a Latin letter from one (a Cyrillic a), an invisible character."""
    decomposed = unicodedata.normalize("NFKD", key)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain if plain.isascii() else None


# Keys whose values are never shown (a token in metadata must not reach a receiver or a page).
# The rule fails closed (``names_secret``): a key that may name a secret is hidden, only the few
# known to be harmless are shown (hiding a harmless value is a nuisance, showing a secret a leak).
_WORDS: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Fragments that make a key secret wherever they stand in it, run together in lower case
# (SECRETKEYBASE, dbpass, JSESSIONID, .ASPXAUTH, seed_phrase, connection_string, tokens).
_SECRET_PARTS: Final = (
    "secret", "token", "pass", "pwd", "auth", "credential", "bearer", "jwt", "signature",
    "cookie", "session", "sessid", "private", "hmac", "mnemonic", "seedphrase", "recoveryphrase",
    "connectionstring", "connstr", "verificationcode", "recoverycode", "backupcode",
)  # fmt: skip
# Fragments secret only as a whole word: inside words they are too common (credit, rootpath,
# snapshot, kansas, spinner).
_SECRET_WORDS: Final = frozenset(
    {"pw", "sig", "cred", "creds", "otp", "totp", "hotp", "mfa", "pin", "dsn", "sas"}
)
# Words that merely hold a fragment: dropped before the key is judged.
_HARMLESS_WORDS: Final = frozenset(
    {
        "author", "authors", "authored", "authority", "authorities", "coauthor", "bypass",
        "compass", "encompass", "surpass", "overpass", "underpass", "passes", "passed", "passing",
        "passive", "passenger", "passengers", "passage", "passthrough", "tokenizer", "monkey",
        "donkey", "turkey", "hockey", "turnkey", "hotkey",
    }
)  # fmt: skip
# The kinds of key that are not secret, as the word before ``key`` (sort_key, PartitionKey) or
# run together with it (rowkey). Not ``primary``: Azure's primaryKey is an account key.
_HARMLESS_KEY_KINDS: Final = frozenset(
    {
        "sort", "partition", "public", "foreign", "cache", "idempotency", "dedup", "dedupe",
        "shard", "row", "lookup", "group", "object", "bucket", "index", "map", "label", "metric",
        "event", "message",
    }
)  # fmt: skip
# Last words that make a key about a secret, not the secret: a count, a size, a kind, a name, a
# time, a state. Not ``id``: session_id is the session, aws_access_key_id half a credential.
_ABOUT_A_SECRET: Final = frozenset(
    {
        "count", "counts", "total", "length", "len", "size", "limit", "remaining", "rate", "type",
        "kind", "name", "names", "provider", "method", "scheme", "algorithm", "alg", "format",
        "version", "enabled", "required", "present", "valid", "expired", "expires", "expiry",
        "expiration", "ttl", "age", "at", "ms", "seconds", "status",
    }
)  # fmt: skip


def names_secret(key: object) -> bool:
    """Whether a name (a metadata key, a pair's in text) may name a secret, so that its value
    must not be shown.

    The key is first read as plain ASCII (``_readable``): one that cannot be (another script, a
    look-alike of a Latin letter, an invisible character) may name a secret. It is then read as
    lower-case words (``X-Api-Key``, ``apiKey``: ``api``, ``key``), words that merely hold a
    fragment (``author``, ``bypass``, ``monkey``) left out. It is secret when
    the rest run together holds a ``_SECRET_PARTS`` fragment, when a word is one of
    ``_SECRET_WORDS``, or when a word is ``key``/``keys`` or ends in it (``authkey``) and the
    kind before it is not one of ``_HARMLESS_KEY_KINDS`` (``sort_key`` is shown, ``routing_key``
    and a bare ``key`` are not); unless the key has more than one word and its last says it is
    about the secret (``token_count``, ``secret_name``, ``token_expires_at``).
    """
    readable = _readable(str(key))
    if readable is None:
        return True  # a key that reads as no ASCII one may be a secret's (fail closed)
    words = [word.lower() for word in _WORDS.findall(readable)]
    if len(words) > 1 and words[-1] in _ABOUT_A_SECRET:
        return False
    words = [word for word in words if word not in _HARMLESS_WORDS]
    run_together = "".join(words)
    if any(part in run_together for part in _SECRET_PARTS):
        return True
    for at, word in enumerate(words):
        if word in _SECRET_WORDS:
            return True
        stem = word.removesuffix("s")
        if stem.endswith("key"):
            kind = stem.removesuffix("key") or (words[at - 1] if at else "")
            if kind not in _HARMLESS_KEY_KINDS:
                return True
    return False
