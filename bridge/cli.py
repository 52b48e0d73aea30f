"""The ``exesdb-bridge`` command (docs/cli.md).

Exit status: 0 on success, 1 when the work failed (e.g. a refused publish), 2 on bad usage or
configuration. The commands that talk to a running bridge find it as ``bridge.client`` says.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from bridge import healthcheck
from bridge.alert_table import ALERT_COLUMNS, NO_OPEN_ALERTS, OPEN_STATES, alert_row, merged
from bridge.client import Target, target, url_argument, user_argument
from bridge.errors import BridgeError, ConfigError
from bridge.messages import INSTANCES
from bridge.redaction import safe_url
from bridge.schema import add_schema_command
from bridge.urls import own_url

# Each command imports what it uses, in its handler: building the parser and `--help` import
# none of pydantic, aiohttp or the models, and no client command imports the service's
# libraries (tests/test_cli_imports.py; docs/performance.md, "Start-up").
if TYPE_CHECKING:
    from bridge.app import Bridge
    from bridge.config import Settings
    from bridge.sinks.alerts.queue import DeliveryQueue
    from bridge.sinks.alerts.records import Unretryable

__all__ = ["main"]

_logger = logging.getLogger("bridge")

# Where `run --demo` keeps its state when EXESDB_STATE_DIR is unset: not the default folder a
# real bridge run from the same place uses.
_DEMO_STATE_DIR: Final = "./.exesdb-bridge-demo"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
_NEEDS_ADMIN: Final = (
    "needs EXESDB_ADMIN_TOKEN: set it to the admin token the bridge runs with "
    "(without one the bridge keeps its admin endpoints off)"
)
# The cycle collector's generation thresholds once running (docs/performance.md measures them).
_GC_THRESHOLDS: Final = (50_000, 20, 20)


def _settings_or_exit(*, warn_unknown: bool = False) -> Settings:
    """The settings, or exit 2 listing every problem; ``warn_unknown``: first warn on stderr
    about each set ``EXESDB_*`` variable that is no setting (a typo of the one the command
    needs, often), as ``run`` and ``check-config`` do with their other warnings. A bad
    configuration is followed by those warnings in any case: a misspelt name is often why a
    required setting is missing."""
    from bridge.config import load_settings

    if warn_unknown:
        _warn_unknown_variables()
    try:
        return load_settings()
    except ConfigError as exc:
        print("exesdb-bridge: bad configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        for note in exc.warnings:
            print(f"exesdb-bridge: warning: {note}", file=sys.stderr)
        if not warn_unknown:
            _warn_unknown_variables()
        raise SystemExit(EXIT_USAGE) from None


def _warn_unknown_variables() -> None:
    from bridge.config import unknown_variables

    for note in unknown_variables(os.environ):
        print(f"exesdb-bridge: warning: {note}", file=sys.stderr)


# -- run --


async def _serve(settings: Settings, demo: bool) -> int:
    import asyncio

    from bridge import __version__
    from bridge.app import Bridge, default_components
    from bridge.bodies import keep_heap_for_bodies

    components = default_components()
    if demo:
        from collectors.demo import demo_component

        components.append(demo_component)
    bridge = Bridge(settings, components=components, keep_replay=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _hang_up, bridge)
    try:
        await bridge.start()
    except OSError as exc:  # the address is a BridgeError of its own; this is anything else
        _logger.error("cannot start: %s", exc)
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
    _settle_heap()
    keep_heap_for_bodies(settings.max_body_bytes)  # the bodies' memory kept between requests
    _logger.info("exesdb-bridge %s running as node %s", __version__, settings.node)
    if bridge.address is not None:
        tls = bridge.web_config is not None and bridge.web_config.ssl_context is not None
        base = own_url(*bridge.address, tls=tls)
        _logger.info("open %s/ and %s/metrics", base, base)
    await stop.wait()
    _logger.info("stopping")
    await bridge.aclose()
    return EXIT_OK


def _hang_up(bridge: Bridge) -> None:
    """SIGHUP (``systemctl reload``, a closed terminal) reads the web config again and keeps
    running: left to Python's default it ended the bridge at once, undrained, with an exit
    systemd counts as clean (no restart)."""
    if not bridge.settings.web_config_file:
        web_config = "no web config to read again"
    elif bridge.web_config is None:
        web_config = "still starting: the web config is being read"
    elif bridge.web_config.reload_if_changed():
        web_config = "web config read again"
    elif bridge.web_config.refused:
        web_config = "web config: nothing new taken (the file is refused, as logged above)"
    else:
        web_config = "web config: nothing new taken (unchanged)"
    _logger.info(
        "SIGHUP: %s; environment variables and the receivers file are read at start (restart to "
        "change them)",
        web_config,
    )


def _settle_heap() -> None:
    """Once started: what start-up built lives as long as the process, so the cycle collector
    leaves it alone (``gc.freeze``), and collects after ``_GC_THRESHOLDS[0]`` new container
    objects rather than 700, which at ingest rates meant a collection every few messages."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.logs import configure_logging

    settings = _settings_or_exit()
    configure_logging(settings)
    for note in settings.warnings():
        _logger.warning("%s", note)
    if args.demo and not os.environ.get("EXESDB_STATE_DIR"):
        # The demo's made-up alerts (brute force on exesdb-2@demo) would otherwise stay in the
        # outbox of the bridge run next from this folder, escalating to its real receivers.
        settings = settings.model_copy(update={"state_dir": _DEMO_STATE_DIR})
        _logger.info(
            "demo: state kept in %s, apart from a bridge run here without --demo"
            " (EXESDB_STATE_DIR names another)",
            _DEMO_STATE_DIR,
        )
    return asyncio.run(_serve(settings, args.demo))


# -- check-config --


def _check_config(args: argparse.Namespace) -> int:
    from bridge.receivers import describe_receivers
    from bridge.webconfig import describe_web_config

    settings = _settings_or_exit()
    shown = settings.redacted()
    if settings.web_config_file:
        shown["EXESDB_WEB_CONFIG_FILE"] += f" ({describe_web_config(settings.web_config_file)})"
    width = max(len(name) for name in shown)
    for name, value in shown.items():
        print(f"{name:<{width}}  {value}")
    if settings.webhook_config_file:
        # One line per receiver: URLs as safe_url shows them, secrets only as set or a file.
        signs = settings.webhook_secret is not None
        for line in describe_receivers(settings.webhook_config_file, webhook_secret=signs):
            print(f"  {line}")
    for note in settings.warnings():
        print(f"warning: {note}", file=sys.stderr)
    return EXIT_OK


# -- publish --


def _publish(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
    from bridge.messages import utc_now
    from bridge.schema import model_named, unknown_tag_message

    settings = _settings_or_exit(warn_unknown=True)
    model = model_named(args.tag)
    if model is None:
        print(f"exesdb-bridge: {unknown_tag_message(args.tag)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        fields: dict[str, Any] = _stdin_fields() if args.stdin else {}
        texts: dict[str, str] = {}
        for item in args.field or ():
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--field {item!r} must be name=value")
            try:
                fields[key] = json.loads(value)
                texts[key] = value
            except ValueError:
                fields[key] = value
        try:
            payload = model.model_validate(fields, context={"node": settings.node})
        except ValidationError as exc:
            # A string field takes the text as written: -f version=1.0, -f user_id=42.
            as_text = {
                str(problem["loc"][0]): texts[str(problem["loc"][0])]
                for problem in exc.errors()
                if problem["type"] == "string_type"
                and len(problem["loc"]) == 1
                and str(problem["loc"][0]) in texts
            }
            if not as_text:
                raise
            payload = model.model_validate(fields | as_text, context={"node": settings.node})
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "payload"
            given = "" if problem["type"] == "missing" else f" (got {_clipped(problem['input'])})"
            print(f"exesdb-bridge: {args.tag}.{where}: {problem['msg']}{given}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"exesdb-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Set but empty counts as unset, as it does for the bridge; checked after the message, so
    # a message can be got right before there is a key.
    if settings.secret_key_base is None or not settings.secret_key_base.get_secret_value():
        print("exesdb-bridge: publish needs SECRET_KEY_BASE to sign with", file=sys.stderr)
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
    bridge = _target(args, settings)
    status, text = asyncio.run(bridge.request("POST", "/v1/messages", headers=headers, body=body))
    if status == 0:
        print(f"exesdb-bridge: {text}", file=sys.stderr)
        return EXIT_FAILED
    if status != 202:
        _refused(bridge, "/v1/messages", status, text)
        return EXIT_FAILED
    if _bridge_json(text, "accepted") is None:
        # Another server's page: named, not printed as if it were the bridge's answer.
        refused = bridge.not_a_bridge("/v1/messages", _BRIDGE_ANSWER, status)
        print(f"exesdb-bridge: {refused}", file=sys.stderr)
        return EXIT_FAILED
    print(text)
    return EXIT_OK


def _stdin_fields() -> dict[str, Any]:
    """The payload's fields from ``--stdin``: one JSON object."""
    try:
        fields = json.loads(sys.stdin.read())
    except ValueError as exc:
        raise ValueError(f"--stdin: not JSON ({exc}); it must hold one JSON object") from exc
    if not isinstance(fields, dict):
        raise ValueError("--stdin must hold one JSON object: the payload's fields")
    return fields


def _target(args: argparse.Namespace, settings: Settings) -> Target:
    """The bridge ``--url`` / ``EXESDB_URL`` / ``EXESDB_HTTP_ADDR`` point at (exit 2 for an
    unusable ``--cacert``)."""
    try:
        return target(settings, url=args.url, cacert=args.cacert, user=args.user)
    except ConfigError as exc:
        print(f"exesdb-bridge: {'; '.join(exc.problems)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _admin_token(settings: Settings, command: str) -> str:
    """``EXESDB_ADMIN_TOKEN`` for ``command`` (exit 2 when unset or empty: the bridge then keeps
    its admin endpoints off)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not token:
        print(f"exesdb-bridge: {command} {_NEEDS_ADMIN}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return token


# -- tail --


def _tail(args: argparse.Namespace) -> int:
    import asyncio

    settings = _settings_or_exit(warn_unknown=True)
    token = _admin_token(settings, "tail")
    bridge = _target(args, settings)
    try:
        return asyncio.run(_follow(args, bridge, token))
    except KeyboardInterrupt:
        return EXIT_OK


async def _follow(args: argparse.Namespace, bridge: Target, token: str) -> int:
    import aiohttp

    params = {key: value for key in ("instance", "topic") if (value := getattr(args, key))}
    printed = 0
    try:
        async with (
            bridge.session(aiohttp.ClientTimeout(total=None, sock_read=None)) as session,
            session.get(
                bridge.url + "/v1/stream", params=params, headers=bridge.admin_headers(token)
            ) as response,
        ):
            if response.status != 200:
                _refused(bridge, "/v1/stream", response.status, await response.text())
                return EXIT_FAILED
            if response.content_type != "text/event-stream":
                # Another server on that port: its page is no stream the bridge ended.
                print(
                    f"exesdb-bridge: {bridge.not_a_bridge('/v1/stream', 'an event stream')}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if not line.startswith("data: "):
                    continue
                print(_one_line(json.loads(line[6:])), flush=True)
                printed += 1
                if args.count and printed >= args.count:
                    return EXIT_OK
    except aiohttp.ClientPayloadError:
        # The stream had begun, so the bridge was reached: it died, or the connection did.
        print(
            f"exesdb-bridge: the stream from {safe_url(bridge.url)} broke off after {printed}"
            " message(s): the bridge stopped without ending it, or the connection was lost",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except aiohttp.ClientError as exc:
        print(f"exesdb-bridge: {bridge.unreachable(exc)}", file=sys.stderr)
        return EXIT_FAILED
    # Only the bridge ends the stream (it is stopping, or a proxy ended it): tail was asked to
    # follow until stopped, so this is a failure a script or a supervisor should see (exit 1).
    print(
        f"exesdb-bridge: the bridge at {safe_url(bridge.url)} closed the stream"
        f" after {printed} message(s) (it is stopping, or a proxy ended the stream)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _one_line(envelope: dict[str, Any]) -> str:
    payload = json.dumps(envelope["payload"], separators=(",", ":"), sort_keys=True)
    return (
        f"{envelope['ts']} {envelope['instance']} {envelope['topic']} "
        f"{envelope['tag']} {envelope['node']} {payload}"
    )


# -- alerts and outbox --


def _alerts(args: argparse.Namespace) -> int:
    import asyncio
    from urllib.parse import quote

    settings = _settings_or_exit(warn_unknown=True)
    token = _admin_token(settings, "alerts")

    bridge = _target(args, settings)
    headers = bridge.admin_headers(token)
    calls: list[tuple[str, dict[str, str] | None, bytes | None]]
    if args.alerts_command == "list":
        path, key = "/v1/alerts", "alerts"
        states = OPEN_STATES if args.state is None else (args.state,)
        calls = [("GET", None if state == "all" else {"state": state}, None) for state in states]
    else:
        body = {"ack_by": args.by, "ack_note": args.note, "resolution": args.resolution}
        path, key = f"/v1/alerts/{quote(args.alert_id, safe='')}/ack", "alert"
        headers["Content-Type"] = "application/json"
        calls = [("POST", None, json.dumps(body).encode())]
    answers = []
    for method, params, data in calls:
        status, text = asyncio.run(
            bridge.request(method, path, headers=headers, params=params, body=data)
        )
        if status != 200:
            _refused(bridge, path, status, text)
            return EXIT_FAILED
        if (one := _bridge_json(text, key)) is None:
            said = bridge.not_a_bridge(path, "its alerts as JSON")
            print(f"exesdb-bridge: {said}", file=sys.stderr)
            return EXIT_FAILED
        answers.append(one)
    answer = merged(answers) if args.alerts_command == "list" else answers[0]
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.alerts_command == "list":
        rows = [alert_row(alert) for alert in answer["alerts"]]
        _print_table(ALERT_COLUMNS, rows, NO_OPEN_ALERTS if args.state is None else "no alerts")
    else:
        _print_table(ALERT_COLUMNS, [alert_row(answer["alert"])], "")
    if args.alerts_command == "list" and answer.get("work_queue_holder") is False:
        print(f"exesdb-bridge: {_NOT_THE_HOLDER.format(safe_url(bridge.url))}", file=sys.stderr)
    if args.alerts_command == "ack" and (note := _ack_unchanged(args, answer["alert"])):
        print(f"exesdb-bridge: {note}", file=sys.stderr)
    return EXIT_OK


def _bridge_json(text: str, key: str) -> dict[str, Any] | None:
    """The bridge's JSON answer holding ``key``; None for anything else (another server)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and key in answer else None


def _ack_unchanged(args: argparse.Namespace, alert: dict[str, Any]) -> str | None:
    """What to say when the bridge kept an earlier acknowledgement (it answers such an ack with
    the alert as it is), so the person does not take the ack for theirs; None otherwise."""
    if alert["state"] == "resolved" and not args.resolution:
        return f"alert {args.alert_id} was resolved already; nothing changed"
    if alert["ack_by"] is not None and (alert["ack_by"], alert["ack_note"]) != (args.by, args.note):
        return (
            f"alert {args.alert_id} was acknowledged already by {alert['ack_by']}"
            f" at {alert['ack_at']}; left as it is"
        )
    return None


def _refused(bridge: Target, path: str, status: int, text: str) -> None:
    """Say on stderr what the bridge answered instead of 200, naming what was asked, or why
    nothing answered (``status`` 0)."""
    answer = _bridge_json(text, "error")
    if status == 0:
        print(f"exesdb-bridge: {text}", file=sys.stderr)
    elif answer is None:  # a page, not the bridge's refusal
        refused = bridge.not_a_bridge(path, _BRIDGE_ANSWER, status)
        print(f"exesdb-bridge: {refused}", file=sys.stderr)
    else:
        asked = safe_url(bridge.url).rstrip("/") + path
        said = _refusal_words(answer)
        if answer["error"] == "admin_disabled":  # this shell has a token; the bridge has none
            said += (
                "; EXESDB_ADMIN_TOKEN set here is what the commands send: the bridge needs it too"
            )
        if status == 401 and "basic_auth_users" in text:  # the web config's, not the token's
            said += (
                " (--user USER[:PASSWORD] sends basic auth)"
                if bridge.basic_auth is None
                else " (the user and password given are not one of its basic_auth_users)"
            )
        print(f"exesdb-bridge: {asked} answered {status}: {said}", file=sys.stderr)


def _refusal_words(answer: dict[str, Any]) -> str:
    """The bridge's JSON refusal (docs/http-api.md#errors) as a person reads it: its sentence,
    then the code and the field at fault in brackets."""
    error = str(answer["error"])
    detail = answer.get("detail")
    field = answer.get("field")
    code = error if field is None else f"{error}, field {field}"
    return f"{detail} ({code})" if detail else code


# What a bridge answers every request with: JSON (docs/http-api.md#errors).
_BRIDGE_ANSWER: Final = "the bridge's JSON"
_NOT_THE_HOLDER: Final = (
    "the replica at {} does not hold the work-queue lease: its alerts may be missing or out of"
    " date; ask the replica that holds it (exesdb_redis_work_queue_leader 1 on its /metrics)"
)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], none: str) -> None:
    """A header and rows in aligned columns (the last one as it is); with no rows, ``none``
    on stderr and nothing on stdout."""
    if not rows:
        print(f"exesdb-bridge: {none}", file=sys.stderr)
        return
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [f"{cell:<{width}}" for cell, width in zip(row[:-1], widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))


def _outbox(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bridge.receiver_keys import receiver_label
    from bridge.sinks.alerts.outbox import FILE_NAME, Outbox

    settings = _settings_or_exit(warn_unknown=True)
    if args.outbox_command == "retry" and not args.all and not args.ids:
        print("exesdb-bridge: outbox retry needs delivery ids or --all", file=sys.stderr)
        return EXIT_USAGE
    path = Path(settings.state_dir) / FILE_NAME
    if not path.exists():
        # Absolute: the default state directory is relative to the folder the command runs in.
        print(
            f"exesdb-bridge: no alert outbox at {path.absolute()}: set EXESDB_STATE_DIR to the"
            f" bridge's state directory (now {settings.state_dir!r})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    outbox = Outbox(path)
    try:
        if args.outbox_command == "list":
            summaries = [d.summary() for d in outbox.queue.deliveries(args.state, args.limit)]
            for summary in summaries:
                # Webhook URLs often carry tokens in their path or query; receiver keys never.
                summary["url"] = receiver_label(summary["url"])
            if args.json:
                for summary in summaries:
                    print(json.dumps(summary))
            else:
                rows = [_delivery_row(summary) for summary in summaries]
                _print_table(_DELIVERY_COLUMNS, rows, "no deliveries")
            return EXIT_OK
        ids = None if args.all else args.ids
        wrong = [] if args.all else _not_retryable(outbox.queue, args.ids)
        left = outbox.dead_letters.unretryable(ids, force=args.force)
        wrong += [_left_why(delivery) for delivery in left]
        for problem in wrong:
            print(f"exesdb-bridge: {problem}", file=sys.stderr)
        count = outbox.dead_letters.retry(time.time(), ids, leave=[d.delivery_id for d in left])
        print(f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} back to pending")
        return EXIT_FAILED if wrong else EXIT_OK
    finally:
        outbox.close()


def _not_retryable(queue: DeliveryQueue, ids: Sequence[str]) -> list[str]:
    """Why each named delivery that is not dead-lettered cannot be retried."""
    from bridge.sinks.alerts.records import DeliveryState

    states = {delivery.id: delivery.state for delivery in queue.deliveries(ids=ids)}
    problems = []
    for delivery_id in dict.fromkeys(ids):
        state = states.get(delivery_id)
        if state is None:
            problems.append(f"no delivery {delivery_id!r} in the outbox (see `outbox list`)")
        elif state is not DeliveryState.DEAD:
            problems.append(f"delivery {delivery_id!r} is {state}, not dead-lettered")
    return problems


def _left_why(delivery: Unretryable) -> str:
    """Why ``outbox retry`` leaves a dead letter as it is."""
    from bridge.receiver_keys import receiver_label

    if delivery.configured:
        receiver = receiver_label(delivery.receiver)
        why = []
        if delivery.resolved:
            resolved = ", ".join(
                f"{alert_id!r} resolved at {at}" for alert_id, at in delivery.resolved
            )
            why.append(
                f"it fires alerts whose resolve {receiver} was sent since ({resolved}), so sent"
                " again it would leave them firing there for good"
            )
        if delivery.refired:
            refired = ", ".join(repr(alert_id) for alert_id in delivery.refired)
            why.append(
                f"it resolves alerts {receiver} was sent firing again since ({refired}), so sent"
                " again it would show them resolved there while they fire"
            )
        return (
            f"delivery {delivery.delivery_id!r} left dead-lettered: {'; '.join(why)};"
            " --force sends it all the same"
        )
    return (
        f"delivery {delivery.delivery_id!r} left dead-lettered: its receiver"
        f" {receiver_label(delivery.receiver)} is not among those the bridge last started with"
        " (EXESDB_WEBHOOK_URLS, EXESDB_WEBHOOK_CONFIG_FILE), so no worker would send it;"
        " configure the receiver again and restart the bridge, then retry"
    )


_DELIVERY_COLUMNS: Final = (
    "DELIVERY_ID",
    "STATE",
    "ALERTS",
    "ATTEMPTS",
    "URL",
    "CREATED",
    "LAST_ERROR",
)


def _delivery_row(summary: dict[str, Any]) -> tuple[str, ...]:
    return (
        summary["id"],
        summary["state"],
        str(summary["alerts"]),
        str(summary["attempts"]),
        summary["url"],
        summary["created_at"],
        summary["last_error"] or "",
    )


# -- the parser --


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _topic(text: str) -> str:
    """An argparse type: a topic an envelope may carry (a bridge refuses any other)."""
    from bridge.bus import check_topic

    try:
        check_topic(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _stream_topic(text: str) -> str:
    """An argparse type: a topic, or a prefix of one ending in ``*``, as ``/v1/stream`` takes it."""
    from bridge.bus import check_topic

    if text != "*":
        try:
            check_topic(text.removesuffix("*"))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _client_options(parser: argparse.ArgumentParser) -> None:
    """Where the bridge is and how to reach it (``bridge.client``)."""
    parser.add_argument(
        "--url",
        type=url_argument,
        help="the bridge (default: EXESDB_URL, else the address in EXESDB_HTTP_ADDR)",
    )
    parser.add_argument("--cacert", metavar="FILE", help="trust this CA (PEM) for https")
    parser.add_argument(
        "--user",
        type=user_argument,
        metavar="USER[:PASSWORD]",
        help="basic auth for a web config with basic_auth_users (asks for a missing password)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task."""
    parser = _Parser(
        prog="exesdb-bridge",
        description="ExESDB PubSub integration bridged to Prometheus, Grafana and OpenTelemetry.",
    )
    parser.add_argument("--version", action=_Version)
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
    publish.add_argument("--topic", type=_topic, help="the topic (default: the tag)")
    publish.add_argument(
        "--field",
        "-f",
        action="append",
        metavar="NAME=VALUE",
        help="a payload field (JSON or text; a string field takes the text as typed)",
    )
    publish.add_argument("--stdin", action="store_true", help="read the payload as JSON from stdin")
    _client_options(publish)
    publish.set_defaults(handler=_publish)

    tail = commands.add_parser("tail", help="print verified messages as they arrive")
    tail.add_argument("--instance", choices=INSTANCES, help="only this bus instance")
    tail.add_argument(
        "--topic", type=_stream_topic, help="only this topic (a trailing * matches a prefix)"
    )
    tail.add_argument(
        "--count", type=_positive, default=0, help="stop after this many messages (at least 1)"
    )
    _client_options(tail)
    tail.set_defaults(handler=_tail)

    alerts = commands.add_parser("alerts", help="list or acknowledge a running bridge's alerts")
    alerts_commands = alerts.add_subparsers(
        dest="alerts_command", required=True, metavar="{list,ack}"
    )
    alerts_list = alerts_commands.add_parser("list", help="list alerts")
    alerts_list.add_argument(
        "--state",
        choices=["firing", "acknowledged", "resolved", "all"],
        help="only alerts in this state, or all (default: firing and acknowledged)",
    )
    alerts_ack = alerts_commands.add_parser("ack", help="acknowledge an alert")
    alerts_ack.add_argument("alert_id", help="the alert's id, as alerts list shows it")
    alerts_ack.add_argument("--by", required=True, help="who acknowledges")
    alerts_ack.add_argument("--note", help="a note")
    alerts_ack.add_argument("--resolution", help="how it was resolved (also resolves it)")
    for sub in (alerts_list, alerts_ack):
        _client_options(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
    alerts.set_defaults(handler=_alerts)

    outbox = commands.add_parser("outbox", help="the local alert outbox (EXESDB_STATE_DIR)")
    outbox_commands = outbox.add_subparsers(
        dest="outbox_command", required=True, metavar="{list,retry}"
    )
    outbox_list = outbox_commands.add_parser("list", help="list deliveries, newest first")
    outbox_list.add_argument(
        "--state",
        choices=["pending", "delivered", "dead"],
        help="only deliveries in this state (default: every state)",
    )
    outbox_list.add_argument(
        "--limit", type=_positive, default=100, help="at most this many (default: 100)"
    )
    outbox_list.add_argument("--json", action="store_true", help="print JSON lines")
    outbox_retry = outbox_commands.add_parser("retry", help="send dead-lettered deliveries again")
    outbox_retry.add_argument(
        "ids", nargs="*", metavar="DELIVERY_ID", help="a dead-lettered delivery, as listed"
    )
    outbox_retry.add_argument("--all", action="store_true", help="every dead-lettered delivery")
    outbox_retry.add_argument(
        "--force",
        action="store_true",
        help="also those firing alerts whose resolve the receiver was sent since",
    )
    outbox.set_defaults(handler=_outbox)
    add_schema_command(commands)

    health = commands.add_parser("healthcheck", help="exit 0 when /healthz answers 200, else 1")
    healthcheck.add_arguments(health)
    health.set_defaults(handler=lambda args: healthcheck.main(args.timeout))
    return parser


class _Parser(argparse.ArgumentParser):
    """A parser that is its own default ``usage_parser``; ``add_subparsers`` makes every
    subcommand's parser one too (argparse's ``parser_class`` defaults to the parent's type), and
    the innermost one chosen wins, so ``main`` can show that command's usage for an unknown
    argument."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(usage_parser=self)


class _Version(argparse.Action):
    """``--version``, the version looked up when asked for (importlib.metadata costs every
    command that is not asked for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show the version and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from bridge import __version__

        print(f"exesdb-bridge {__version__}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # argparse hands an unknown argument of a subcommand back to the top-level parser, which
    # would show its own usage: report it with the usage of the command it was given to.
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        # No command at all: a person finding their way, shown the commands rather than told
        # that one is required.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = ""
        if args.command == "publish" and args.tag in INSTANCES:
            # `publish ex_esdb_health node_health_updated`, as examples/sign.sh takes them.
            hint = (
                f" ({args.tag!r} is a bus instance: publish takes the message type alone,"
                " and its instance follows from it)"
            )
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader stopped early (`... | head`): not a failure. Stop quietly, as the Python
        # docs' recipe does, pointing stdout at /dev/null so the flush at exit does not fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except KeyboardInterrupt:
        # Ctrl-C while a command waits (on stdin, on a slow bridge): the person stopped it, so
        # no traceback. tail and run take Ctrl-C as their way to stop and exit 0 themselves.
        return EXIT_INTERRUPTED


def _clipped(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis when longer."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
