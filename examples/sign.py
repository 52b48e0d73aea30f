#!/usr/bin/env python3
"""Sign one message with SECRET_KEY_BASE and post it to a bridge's ingest (standard library only).

    SECRET_KEY_BASE=... python3 examples/sign.py INSTANCE TAG PAYLOAD_JSON [--topic TOPIC]
        [--cacert FILE] [--user USER[:PASSWORD]] [--timeout SECONDS]
    SECRET_KEY_BASE=... python3 examples/sign.py ex_esdb_metrics performance_metric \\
        '{"metric_name": "queue_depth", "value": 12, "unit": "messages", "component": "orders"}'

A health or lifecycle message is not side-effect free: the node it names joins the cluster, and
one that then goes silent is declared down with a critical alert (docs/http-api.md#ingest).

The bridge is EXESDB_URL, else the address in EXESDB_HTTP_ADDR (default 0.0.0.0:9570; a wildcard
host is asked on loopback; over https when EXESDB_WEB_CONFIG_FILE names a file with a
tls_server_config section, trusting that file's own certificate alone, the first of its cert_file
or of its inline cert, whatever host it names), as for `exesdb-bridge publish`. The bridge needs
EXESDB_INGEST=true. Against a bridge at EXESDB_URL serving TLS with a CA of your own, or one
asking for basic auth, as with `exesdb-bridge publish`: --cacert FILE trusts that CA (PEM; through
EXESDB_HTTP_ADDR too, instead of the file's certificate), --user USER:PASSWORD sends
basic auth (--user USER: the password is asked for; a user:password@ in EXESDB_URL is taken
too); --timeout SECONDS (default 10) bounds each wait for the bridge. Prints the HTTP status
and the bridge's answer; exits 0 on 202. The envelope and the signature: docs/messages.md#envelope,
docs/http-api.md#ingest.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import getpass
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import ssl
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from datetime import UTC, datetime

# A certificate whose chain verified, for another name or address than the one asked (OpenSSL's
# X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH).
_NOT_ITS_NAME = frozenset({62, 64})
# A certificate not yet valid or expired (X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED).
_OUT_OF_DATE = frozenset({9, 10})


def setting(name: str) -> str | None:
    """The variable ``name`` as the bridge and exesdb-bridge publish read it: None when unset,
    empty or blanks only (docker compose's ``${X:-}``, a stray space in an env file)."""
    value = os.environ.get(name)
    return value if value and not value.isspace() else None


def bridge_url() -> str:
    """EXESDB_URL, else the address EXESDB_HTTP_ADDR names (a wildcard host is loopback), over
    https when the web config file EXESDB_WEB_CONFIG_FILE has a tls_server_config section;
    ValueError for an EXESDB_URL that is no http(s) URL with a host, or an EXESDB_HTTP_ADDR
    that is no host:port with a port from 1 to 65535 (an IPv6 host in brackets)."""
    url = setting("EXESDB_URL")
    if url:
        # As exesdb-bridge publish reads it: anything else would reach urllib as a traceback.
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # raises for a port that is no number from 0 to 65535
        except ValueError:  # that, or an unclosed [ of an IPv6 host
            parts = urllib.parse.urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"EXESDB_URL: {shown_origin(url)}, e.g. http://127.0.0.1:9570")
        if "?" in url or "#" in url:  # the path added would be part of them: a POST to the page
            raise ValueError(
                "EXESDB_URL: has a query or fragment (? or #), after which the path added"
                " (/v1/messages) would land; allowed: the bridge's URL without them"
            )
        return url.rstrip("/")
    address = setting("EXESDB_HTTP_ADDR") or "0.0.0.0:9570"
    host, colon, port = address.rpartition(":")
    # As the bridge reads it: a port alone, a URL or port 0 (the bridge picks one) is no address
    # to send a signed message to.
    number = int(port) if port.isascii() and port.isdigit() else 0
    if not colon or "/" in address or not 0 < number < 65536:
        raise ValueError(
            "EXESDB_HTTP_ADDR: must be host:port as the bridge listens on it, e.g. 127.0.0.1:9570"
            f" (got {address!r}); a bridge's URL goes in EXESDB_URL"
        )
    if ":" in host and not host.startswith("["):
        # '::1:9570', as the bridge refuses it: the URL built would be http://::1:9570. Brackets
        # are suggested only to an IPv6 address: '::9570' or 'a:b:9570' has no host in them.
        try:
            socket.inet_pton(socket.AF_INET6, host.partition("%")[0])  # %eth0: a scope
        except OSError:
            raise ValueError(
                "EXESDB_HTTP_ADDR: must be host:port, the host an IP address ([::1] for IPv6) or"
                " a host name, e.g. 0.0.0.0:9570"
            ) from None
        raise ValueError(
            "EXESDB_HTTP_ADDR: must be host:port, an IPv6 host in brackets; did you mean"
            f" '[{host}]:{port}'?"
        )
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"{'https' if serves_tls() else 'http'}://{host}:{port}"


def shown_origin(url: str) -> str:
    """What is wrong with a refused URL, naming it as the bridge's commands do: its origin only,
    the password redacted (its path or query may hold a token)."""
    found = re.match(r"([^/:]*:)//([^/?#]*)(.*)", url, re.S)
    if found is None:
        return "not a URL; allowed: an http:// or https:// URL with a host"
    scheme, authority, rest = found.groups()
    user, at, host = authority.rpartition("@")
    if ":" in user:
        user = user.partition(":")[0] + ":<redacted>"
    shown = f"{scheme}//{user}{at}{host}{'/…' if rest else ''}"
    return f"{shown!r} is not an http:// or https:// URL with a host"


def serves_tls() -> bool:
    """True when EXESDB_WEB_CONFIG_FILE names a readable file with a tls_server_config key."""
    try:
        config = read_file(setting("EXESDB_WEB_CONFIG_FILE") or os.devnull)
    except OSError:
        return False
    return re.search(r"^tls_server_config:", config, re.M) is not None


def read_file(path: str) -> str:
    """The text of the file ``path``, 1 MiB at most (the most the bridge reads of a web config
    or a certificate file), bytes that are no UTF-8 kept as escapes; OSError when it cannot be
    read or is no regular file (a FIFO's open would wait for a writer, a device's read never
    end)."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return file.read(1 << 20).decode("utf-8", "surrogateescape")


def own_certificate() -> str | None:
    """The certificate the bridge serves, as EXESDB_WEB_CONFIG_FILE names it: the first one of
    its tls_server_config's cert_file (relative to the file's folder), else of its inline cert
    (a YAML block scalar, cert: |), as PEM; None when the file names neither (written in YAML's
    flow style, say); ValueError naming the cert_file that cannot be read or holds none."""
    path = setting("EXESDB_WEB_CONFIG_FILE") or os.devnull
    text = read_file(path) + "\n"
    # The section: its key at the line's start, then every line indented, blank or a comment.
    section = re.search(
        r"^tls_server_config:[ \t]*(?:#.*)?\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.M
    )
    body = section.group(1) if section else ""
    value = r"""(?:"([^"]*)"|'([^']*)'|(\S(?:.*?\S)??))[ \t]*(?:[ \t]#.*)?$"""
    named = re.search(rf"^[ \t]+cert_file:[ \t]*{value}", body, re.M)
    inline = re.search(
        r"^([ \t]+)cert:[ \t]*[|>][-+0-9]*[ \t]*(?:#.*)?\n((?:\1[ \t]+.*\n|[ \t]*\n)*)", body, re.M
    )
    if named:
        cert_file = os.path.join(os.path.dirname(path), next(filter(None, named.groups())))
        try:
            pem = read_file(cert_file)
        except OSError as exc:  # missing, or not this user's to read: the bridge's user's alone
            raise ValueError(
                f"EXESDB_WEB_CONFIG_FILE: tls_server_config.cert_file {cert_file}:"
                f" {exc.strerror or exc}; --cacert FILE trusts a CA of your own instead"
            ) from None
    elif inline:
        pem = re.sub(r"^[ \t]+", "", inline.group(2), flags=re.M)
    else:
        return None
    first = re.search(r"-----BEGIN CERTIFICATE-----\r?\n[^-]*-----END CERTIFICATE-----", pem)
    if first is None:
        where = f"cert_file {cert_file}" if named else "cert"
        raise ValueError(
            f"EXESDB_WEB_CONFIG_FILE: tls_server_config.{where} holds no PEM certificate"
            " (-----BEGIN CERTIFICATE-----)"
        )
    return first.group(0)


def pinned(certificate: str) -> ssl.SSLContext:
    """A client context trusting ``certificate`` alone, as exesdb-bridge publish trusts the web
    config's: the only trust anchor (OpenSSL's partial-chain flag lets a server's own certificate
    be one), so no other passes, whoever signed it; its host is not checked, since the address
    asked is the one the bridge listens on (loopback for a wildcard), which it need not name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # safe: the one certificate trusted is pinned
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=certificate)
    return context


def credentials(url: str, user: str | None) -> tuple[str, str | None]:
    """The URL without any user:password@, and the Authorization header basic auth needs:
    from --user (asking for the password when it has none), else from the URL; ValueError when
    the password is missing and nothing can give it (no terminal, and stdin ended)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and user is None:
        return url, None
    if user is None:
        name, password = parts.username or "", parts.password or ""
        name, password = urllib.parse.unquote(name), urllib.parse.unquote(password)
    elif ":" in user:
        name, _, password = user.partition(":")
    else:
        name, password = user, ask_password(user)
    netloc = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def ask_password(user: str) -> str:
    """The password of --user USER, asked on the terminal, else read from stdin; ValueError
    when neither gives one (stdin empty, or closed: None, which getpass reads without a check)."""
    with warnings.catch_warnings():
        # Without a terminal getpass says "Password input may be echoed" itself; its Python
        # warning would add a line of its source beside it.
        warnings.simplefilter("ignore", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"password for {user}: ")
        except EOFError:
            pass
        except AttributeError:
            if sys.stdin is not None:
                raise
    end_prompt_line()
    raise ValueError(
        f"--user {user}: no password given, and none could be asked for (no terminal,"
        f" and stdin ended): give it as --user {user}:PASSWORD"
    )


def end_prompt_line() -> None:
    """End the password prompt's line where getpass wrote it (the terminal, else stderr), so
    that what follows goes on a line of its own."""
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write("\n")
    except OSError:
        sys.stderr.write("\n")


def ca_file_refusal(path: str) -> str:
    """Why the CA file ``path``, which OpenSSL refused, will not do: it holds no PEM certificate,
    else the line of the first one OpenSSL cannot read alone, its base64 or its DER damaged,
    or of one cut short before its END line."""
    try:
        with open(path, encoding="latin-1") as file:
            text = file.read()
    except OSError as exc:  # gone since OpenSSL read it
        return exc.strerror or str(exc)
    label = r"-----BEGIN ((?:X509 |TRUSTED )?CERTIFICATE)-----"
    begun = list(re.finditer(label, text))
    if not begun:
        return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    # A body holds no "-" (base64 has none): one cut off before its END line is not read on
    # into the next block (a private key between, maybe), nor written whole to a file.
    blocks = list(re.finditer(label + r"\r?\n[^-]*-----END \1-----", text))
    damaged = "holds a PEM certificate that cannot be read"
    for block in blocks:
        line = text.count("\n", 0, block.start()) + 1
        # Between the BEGIN and END lines, without the line ends and blanks OpenSSL passes over.
        base64_text = re.sub(r"[ \t\r\n]", "", block[0].split("-----")[2])
        try:
            binascii.a2b_base64(base64_text, strict_mode=True)
        except binascii.Error:
            return f"{damaged} (line {line}: its base64 is damaged)"
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as alone:
            alone.write(block[0])
            alone.flush()
            try:
                ssl.create_default_context(cafile=alone.name)
            except ssl.SSLError:
                return f"{damaged} (line {line}: its DER is no X.509 certificate)"
    for begin in begun:
        if not any(block.start() <= begin.start() < block.end() for block in blocks):
            line = text.count("\n", 0, begin.start()) + 1  # a file cut short, a paste cut off
            return f"{damaged} (line {line}: no -----END {begin[1]}----- line after it)"
    return "cannot be read by OpenSSL (PEM lib), though each PEM certificate in it reads alone"


def sign(key: bytes, body: bytes, t: int) -> str:
    """The X-ExESDB-Signature header: HMAC-SHA256 over "<t>." + body, as lowercase hex."""
    return f"t={t},v1={hmac.new(key, f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def json_object(text: str) -> dict[str, object]:
    """The payload argument: one JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"status": "healthy"}\'')
    return value


def positive_seconds(text: str) -> float:
    """The --timeout argument: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return seconds


def option_named(arg: str) -> str:
    """An argument no option took, as a refusal shows it: an option without a value given in
    it, which may be a password (curl's -uops:PASSWORD, --usr=ops:PASSWORD,
    --userops:PASSWORD): a short one by its letter (``-u…``), a long one cut where no option's
    name goes on (``--usr=…``, ``--user…``, ``--usrops…``)."""
    if not arg.startswith("-"):
        return arg
    if not arg.startswith("--"):
        return arg[:2] + "…" if len(arg) > 2 else arg
    name = "--" + re.sub(r"[^A-Za-z-].*", "", arg[2:], flags=re.DOTALL)
    for known in ("--cacert", "--user", "--timeout", "--topic"):
        if name.startswith(known) and name != known:
            name = known
    rest = arg[len(name) :]
    return name + ("=…" if rest.startswith("=") else "…" if rest else "")


def main() -> int:
    parser = argparse.ArgumentParser(description="Sign one message and post it to a bridge.")
    parser.add_argument("instance", help="the bus instance, e.g. ex_esdb_health")
    parser.add_argument("tag", help="the message type, e.g. node_health_updated")
    parser.add_argument("payload", type=json_object, help="the payload as a JSON object")
    parser.add_argument("--topic", help="the topic (default: the tag)")
    parser.add_argument("--cacert", metavar="FILE", help="trust this CA (PEM) for https")
    parser.add_argument("--user", metavar="USER[:PASSWORD]", help="send basic auth")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=10.0,
        help="wait at most this long for the bridge (default 10)",
    )
    args, unknown = parser.parse_known_args()
    if unknown:
        # argparse's own error would show them whole: --usr=USER:PASSWORD, curl's -uUSER:PASSWORD.
        parser.error(f"unrecognized arguments: {' '.join(map(option_named, unknown))}")
    key = setting("SECRET_KEY_BASE")
    if not key:
        parser.error("set SECRET_KEY_BASE to the bridge's key")
    try:
        key_bytes = key.encode()
    except UnicodeEncodeError:  # random bytes: as the bridge refuses such a key, not a traceback
        parser.error(
            "SECRET_KEY_BASE holds bytes that are not UTF-8 text: set it to the bridge's key"
        )
    envelope = {
        "v": 1,
        "id": secrets.token_hex(16),
        "instance": args.instance,
        "topic": args.topic or args.tag,
        "tag": args.tag,
        "node": setting("EXESDB_NODE") or socket.gethostname(),
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "payload": args.payload,
    }
    body = json.dumps(envelope).encode()
    try:
        bridge, authorization = credentials(bridge_url(), args.user)
    except ValueError as exc:
        parser.error(str(exc))
    headers = {
        "Content-Type": "application/json",
        "X-ExESDB-Signature": sign(key_bytes, body, int(time.time())),
    }
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(f"{bridge}/v1/messages", data=body, headers=headers)
    try:
        context = ssl.create_default_context(cafile=args.cacert) if args.cacert else None
    except ssl.SSLError:  # said as publish says it, not "PEM lib"
        parser.error(f"--cacert {args.cacert}: {ca_file_refusal(args.cacert)}")
    except OSError as exc:  # no such file, or not one this user may read
        parser.error(f"--cacert {args.cacert}: {exc.strerror or exc}")
    own = None
    if context is None and bridge.startswith("https:") and not setting("EXESDB_URL"):
        # The bridge's own address, whose certificate is the web config's: trusted alone.
        try:
            own = own_certificate()
            context = pinned(own) if own is not None else None
        except ValueError as exc:
            parser.error(str(exc))
        except ssl.SSLError as exc:  # a PEM block OpenSSL cannot read
            parser.error(f"EXESDB_WEB_CONFIG_FILE: its certificate cannot be read: {exc}")
        except OSError as exc:  # the web config itself, gone since it was first read
            parser.error(f"EXESDB_WEB_CONFIG_FILE: {exc.strerror or exc}")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout, context=context) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read().decode()
    except (urllib.error.URLError, OSError) as exc:  # refused, unresolvable, timed out, TLS
        reason = getattr(exc, "reason", exc)
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError) and reason.verify_code in _NOT_ITS_NAME:
            # The chain verified (OpenSSL checks the name after it): no CA would help.
            hint = (
                "; its certificate is not for the host asked: give EXESDB_URL a host name or"
                " address its certificate holds"
            )
        elif (
            isinstance(reason, ssl.SSLCertVerificationError) and reason.verify_code in _OUT_OF_DATE
        ):
            # The web config's own certificate, pinned, too: it is the one served.
            hint = (
                "; its certificate is out of its dates: renew it, or set this machine's clock"
                " right; trusting another CA would not help"
            )
        elif isinstance(reason, ssl.SSLCertVerificationError) and own is not None:
            hint = (
                "; it serves another certificate than EXESDB_WEB_CONFIG_FILE's, the one trusted"
                " here: is that the web config of the bridge at this address? --cacert FILE"
                " trusts a CA instead"
            )
        elif isinstance(reason, ssl.SSLCertVerificationError):
            hint = "; --cacert FILE trusts a CA of your own"
        elif isinstance(reason, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(reason):
            # Plain http answering a TLS handshake: no CA would help.
            hint = (
                "; the bridge may serve plain http: use http:// unless its web config turns TLS on"
            )
        elif not isinstance(reason, ssl.SSLError):
            # Refused, unresolvable or timed out: most often not the bridge's address or port.
            hint = " (EXESDB_URL or EXESDB_HTTP_ADDR says where it is)"
        print(
            f"{parser.prog}: cannot reach the bridge at {bridge}: {reason}{hint}", file=sys.stderr
        )
        return 1
    print(status, text)
    return 0 if status == 202 else 1


if __name__ == "__main__":
    sys.exit(main())
