"""What the tests of ``exesdb-bridge healthcheck`` share: a server on loopback answering as told,
and the command run in the test's process or in its own."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tests.support import BridgeProcess, run_bridge, run_in_process
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on 127.0.0.1 whose /healthz and /readyz run a given handler; records
    requests."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append(request)
            return await handler(request)

        app = web.Application()
        app.router.add_get("/healthz", record)
        app.router.add_get("/readyz", record)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, scheme: str = "http", path: str = "/healthz") -> str:
        """Where its /healthz (or ``path``) is."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def aclose(self) -> None:
        """Release hung handlers and stop serving."""
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


def answer(status: int, **headers: str) -> Handler:
    """A handler answering ``status`` with ``headers``."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, text="{}", headers=headers)

    return handle


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``exesdb-bridge healthcheck`` in this process (``run_in_process``: the entry point a
    process runs, a clean bridge environment plus ``env``), at a fraction of a process's cost."""
    return run_in_process("healthcheck", *args, env=env)


def healthcheck_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``healthcheck`` in a ``python -m bridge`` process of its own: where the process is the
    point (an exec probe's timeout holds for the whole process), or the caller is no main thread
    (``run_in_process`` times a command with SIGALRM)."""
    return run_bridge("healthcheck", *args, env=env)


PASSWORD = "probe-password"


def secured_bridge(
    folder: Path, password_text: str = PASSWORD, bus: str | None = None
) -> tuple[BridgeProcess, dict[str, str]]:
    """A bridge (not started) in ``folder`` behind TLS, client certificates and basic auth
    (user ``probe``, ``PASSWORD``), on ``bus`` if given (EXESDB_BUS); and the environment of a
    healthcheck that passes them all (its password file holding ``password_text``)."""
    files = WebFiles(folder)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
        + f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    )
    client = files.client_cert(name="probe")
    client.cert_chain_pems[0].write_to_path(str(folder / "probe.pem"))
    client.private_key_pem.write_to_path(str(folder / "probe.key"))
    (folder / "password").write_text(password_text)
    bridge = BridgeProcess(
        state_dir=folder / "state",
        context=files.client_context(client),
        headers={"Authorization": basic("probe", PASSWORD)},
        EXESDB_WEB_CONFIG_FILE=str(folder / "web.yml"),
    )
    if bus is not None:
        bridge.env["EXESDB_BUS"] = bus
    env = {
        "EXESDB_HTTP_ADDR": f"0.0.0.0:{bridge.port}",
        "EXESDB_WEB_CONFIG_FILE": str(folder / "web.yml"),
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "password"),
        "EXESDB_HEALTHCHECK_CERT_FILE": str(folder / "probe.pem"),
        "EXESDB_HEALTHCHECK_KEY_FILE": str(folder / "probe.key"),
    }
    return bridge, env


def rotate_badly(files: WebFiles, how: str) -> str:
    """A TLS section that passes the schema but that the bridge refuses: a new certificate in a
    new cert_file with the old key, a key_file or a cert_file that is not there."""
    files.ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(files.folder / "new.pem"))
    cert_file, key_file = {
        "mismatched-key": ("new.pem", "server.key"),
        "missing-key-file": ("new.pem", "gone.key"),
        "missing-cert-file": ("gone.pem", "server.key"),
    }[how]
    return f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
