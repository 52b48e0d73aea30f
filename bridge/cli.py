"""The ``exesdb-bridge`` command (SPEC section 11).

Exit status: 0 on success, 1 when the work failed (e.g. a refused publish), 2 on bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError

from bridge import __version__, healthcheck
from bridge.config import Settings, load_settings
from bridge.errors import BridgeError, ConfigError
from bridge.schema import add_schema_command
from bridge.webconfig import describe_web_config

__all__ = ["main"]

_logger = logging.getLogger("bridge")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
_DEFAULT_URL: Final = "http://127.0.0.1:9570"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print("exesdb-bridge: bad configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


# -- run --


async def _serve(settings: Settings, demo: bool) -> int:
    from bridge.app import Bridge, default_components

    components = default_components()
    if demo:
        from collectors.demo import demo_component

        components.append(demo_component)
    bridge = Bridge(settings, components=components)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await bridge.start()
    except OSError as exc:
        _logger.error("cannot listen on %s: %s", settings.http_addr, exc)
        await bridge.aclose()
        return EXIT_FAILED
    except ConfigError as exc:  # e.g. EXESDB_STATE_DIR cannot hold the alert outbox
        _logger.error("%s", exc)
        await bridge.aclose()
        return EXIT_USAGE
    except BridgeError as exc:
        _logger.error("%s", exc)
        await bridge.aclose()
        return EXIT_FAILED
    _logger.info("exesdb-bridge %s running as node %s", __version__, settings.node)
    await stop.wait()
    _logger.info("stopping")
    await bridge.aclose()
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    configure_logging(settings)
    for note in settings.warnings():
        _logger.warning("%s", note)
    return asyncio.run(_serve(settings, args.demo))


# -- check-config --


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    shown = settings.redacted()
    if settings.web_config_file:
        shown["EXESDB_WEB_CONFIG_FILE"] += f" ({describe_web_config(settings.web_config_file)})"
    width = max(len(name) for name in shown)
    for name, value in shown.items():
        print(f"{name:<{width}}  {value}")
    for note in settings.warnings():
        print(f"warning: {note}", file=sys.stderr)
    return EXIT_OK


# -- publish --


def _publish(args: argparse.Namespace) -> int:
    from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
    from bridge.messages import TAGS, utc_now

    settings = _settings_or_exit()
    if settings.secret_key_base is None:
        print("exesdb-bridge: publish needs SECRET_KEY_BASE to sign with", file=sys.stderr)
        return EXIT_USAGE
    model = TAGS.get(args.tag)
    if model is None:
        print(f"exesdb-bridge: unknown tag {args.tag!r}; known: {', '.join(TAGS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        fields: dict[str, Any] = json.loads(sys.stdin.read()) if args.stdin else {}
        if not isinstance(fields, dict):
            raise ValueError("stdin must hold one JSON object: the payload's fields")
        for item in args.field or ():
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--field {item!r} must be name=value")
            try:
                fields[key] = json.loads(value)
            except ValueError:
                fields[key] = value
        payload = model.model_validate(fields, context={"node": settings.node})
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "payload"
            print(f"exesdb-bridge: {args.tag}.{where}: {problem['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"exesdb-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = utc_now()
    envelope = Envelope(
        new_message_id(),
        model.INSTANCE,
        args.topic or model.TAG,
        model.TAG,
        settings.node,
        now,
        payload,
        now.timestamp(),
    )
    body = envelope.to_bytes()
    keyring = Keyring.from_secrets(settings.secret_key_base.get_secret_value())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: keyring.sign_header(body, int(time.time())),
    }
    status, text = asyncio.run(_post(f"{args.url.rstrip('/')}/v1/messages", body, headers))
    print(text)
    return EXIT_OK if status == 202 else EXIT_FAILED


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError as exc:
        return 0, f"cannot reach {url}: {exc}"


# -- tail --


def _tail(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    if settings.admin_token is None:
        print("exesdb-bridge: tail needs EXESDB_ADMIN_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_follow(args, settings.admin_token.get_secret_value()))
    except KeyboardInterrupt:
        return EXIT_OK


async def _follow(args: argparse.Namespace, token: str) -> int:
    import aiohttp

    params = {key: value for key in ("instance", "topic") if (value := getattr(args, key))}
    url = f"{args.url.rstrip('/')}/v1/stream"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    printed = 0
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(
                url, params=params, headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            if response.status != 200:
                print(f"exesdb-bridge: {response.status} {await response.text()}", file=sys.stderr)
                return EXIT_FAILED
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if not line.startswith("data: "):
                    continue
                print(_one_line(json.loads(line[6:])), flush=True)
                printed += 1
                if args.count and printed >= args.count:
                    return EXIT_OK
    except aiohttp.ClientError as exc:
        print(f"exesdb-bridge: cannot reach {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _one_line(envelope: dict[str, Any]) -> str:
    payload = json.dumps(envelope["payload"], separators=(",", ":"), sort_keys=True)
    return (
        f"{envelope['ts']} {envelope['instance']} {envelope['topic']} "
        f"{envelope['tag']} {envelope['node']} {payload}"
    )


# -- alerts and outbox --


def _alerts(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    if settings.admin_token is None:
        print("exesdb-bridge: alerts needs EXESDB_ADMIN_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    from urllib.parse import quote, urlencode

    base = f"{args.url.rstrip('/')}/v1/alerts"
    headers = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    if args.alerts_command == "list":
        query = urlencode({"state": args.state}) if args.state else ""
        status, text = asyncio.run(_http("GET", f"{base}?{query}", headers))
    else:
        body = {"ack_by": args.by, "ack_note": args.note, "resolution": args.resolution}
        url = f"{base}/{quote(args.alert_id, safe='')}/ack"
        status, text = asyncio.run(_http("POST", url, headers, json.dumps(body).encode()))
    if status != 200:
        print(f"exesdb-bridge: {status or 'error'} {text}", file=sys.stderr)
        return EXIT_FAILED
    answer = json.loads(text)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.alerts_command == "list":
        for alert in answer["alerts"]:
            print(_alert_line(alert))
    else:
        print(_alert_line(answer["alert"]))
    return EXIT_OK


def _alert_line(alert: dict[str, Any]) -> str:
    return (
        f"{alert['alert_id']}  {alert['state']}  {alert['level']}  {alert['severity']}  "
        f"{alert['labels']['alertname']}  {alert['labels']['node']}  since {alert['starts_at']}"
    )


async def _http(
    method: str, url: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, str]:
    import aiohttp

    if body is not None:
        headers = {**headers, "Content-Type": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError as exc:
        return 0, f"cannot reach {url}: {exc}"


def _outbox(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bridge.redaction import safe_url
    from bridge.sinks.alerts.outbox import FILE_NAME, Outbox

    settings = _settings_or_exit()
    path = Path(settings.state_dir) / FILE_NAME
    if not path.exists():
        print(f"exesdb-bridge: no alert outbox at {path} (EXESDB_STATE_DIR)", file=sys.stderr)
        return EXIT_FAILED
    outbox = Outbox(path)
    try:
        if args.outbox_command == "list":
            for delivery in outbox.deliveries(args.state, args.limit):
                summary = delivery.summary()
                # Webhook URLs often carry tokens in their path or query.
                summary["url"] = safe_url(summary["url"])
                print(json.dumps(summary) if args.json else _delivery_line(summary))
            return EXIT_OK
        if not args.all and not args.ids:
            print("exesdb-bridge: outbox retry needs delivery ids or --all", file=sys.stderr)
            return EXIT_USAGE
        count = outbox.retry(time.time(), None if args.all else args.ids)
        print(f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} back to pending")
        return EXIT_OK if count or args.all else EXIT_FAILED
    finally:
        outbox.close()


def _delivery_line(summary: dict[str, Any]) -> str:
    error = f"  {summary['last_error']}" if summary["last_error"] else ""
    return (
        f"{summary['id']}  {summary['state']}  {summary['alerts']} alert(s)  "
        f"{summary['attempts']} attempt(s)  {summary['url']}  {summary['created_at']}{error}"
    )


# -- the parser --


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="exesdb-bridge",
        description="ExESDB PubSub integration bridged to Prometheus, Grafana and OpenTelemetry.",
    )
    parser.add_argument("--version", action="version", version=f"exesdb-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the bridge service")
    run.add_argument(
        "--demo", action="store_true", help="add a simulated three-node ExESDB cluster's traffic"
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="print the resolved configuration")
    check.set_defaults(handler=_check_config)

    publish = commands.add_parser("publish", help="sign and send one message to a bridge")
    publish.add_argument("tag", help="the message type, e.g. system_alert")
    publish.add_argument("--topic", help="the topic (default: the tag)")
    publish.add_argument(
        "--field",
        "-f",
        action="append",
        metavar="NAME=VALUE",
        help="a payload field (JSON or text)",
    )
    publish.add_argument("--stdin", action="store_true", help="read the payload as JSON from stdin")
    publish.add_argument("--url", default=_DEFAULT_URL, help=f"the bridge (default {_DEFAULT_URL})")
    publish.set_defaults(handler=_publish)

    tail = commands.add_parser("tail", help="print verified messages as they arrive")
    tail.add_argument("--url", default=_DEFAULT_URL, help=f"the bridge (default {_DEFAULT_URL})")
    tail.add_argument("--instance", help="only this bus instance")
    tail.add_argument("--topic", help="only this topic (a trailing * matches a prefix)")
    tail.add_argument("--count", type=int, default=0, help="stop after this many messages")
    tail.set_defaults(handler=_tail)

    alerts = commands.add_parser("alerts", help="list or acknowledge a running bridge's alerts")
    alerts_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    alerts_list = alerts_commands.add_parser("list", help="list alerts")
    alerts_list.add_argument("--state", choices=["firing", "acknowledged", "resolved"])
    alerts_ack = alerts_commands.add_parser("ack", help="acknowledge an alert")
    alerts_ack.add_argument("alert_id")
    alerts_ack.add_argument("--by", required=True, help="who acknowledges")
    alerts_ack.add_argument("--note", help="a note")
    alerts_ack.add_argument("--resolution", help="how it was resolved (also resolves it)")
    for sub in (alerts_list, alerts_ack):
        sub.add_argument("--url", default=_DEFAULT_URL, help=f"the bridge (default {_DEFAULT_URL})")
        sub.add_argument("--json", action="store_true", help="print JSON")
    alerts.set_defaults(handler=_alerts)

    outbox = commands.add_parser("outbox", help="the local alert outbox (EXESDB_STATE_DIR)")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_list = outbox_commands.add_parser("list", help="list deliveries, newest first")
    outbox_list.add_argument("--state", choices=["pending", "delivered", "dead"])
    outbox_list.add_argument("--limit", type=int, default=100)
    outbox_list.add_argument("--json", action="store_true", help="print JSON lines")
    outbox_retry = outbox_commands.add_parser("retry", help="send dead-lettered deliveries again")
    outbox_retry.add_argument("ids", nargs="*", metavar="DELIVERY_ID")
    outbox_retry.add_argument("--all", action="store_true", help="every dead-lettered delivery")
    outbox.set_defaults(handler=_outbox)
    add_schema_command(commands)

    health = commands.add_parser("healthcheck", help="exit 0 when /healthz answers 200, else 1")
    health.add_argument("--timeout", type=healthcheck.seconds, default=healthcheck.DEFAULT_TIMEOUT)
    health.set_defaults(handler=lambda args: healthcheck.main(args.timeout))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
