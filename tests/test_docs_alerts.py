"""docs/alerts.md's receiver recipes, Python's and Node.js's, accept what the bridge signs a
webhook with and refuse what it did not sign."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Final

import pytest

from bridge.bus import Keyring
from tests.doc_text import fenced, page, section
from tests.support import require_binary

SECRET: Final = "receiver-secret-of-at-least-32-characters"
# A delivery's body, with a character UTF-8 writes in two bytes: the MAC is over bytes.
BODY: Final = json.dumps({"status": "firing", "alerts": [{"title": "p99 at 12 µs"}]}).encode()

Verifier = Callable[[str, str, bytes], bool]


def _python_verify(secret: str, header: str, body: bytes) -> bool:
    """The Python recipe's verify(), run as written."""
    [block] = fenced(section(page("alerts"), "Headers and signature"), "python")
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/alerts.md", "exec"), namespace)  # our own docs
    verify = namespace["verify"]
    assert callable(verify)
    return bool(verify(secret, header, body))


def _node_verify(secret: str, header: str, body: bytes) -> bool:
    """The Node.js recipe's verify(), run by node as written, the body handed over as a Buffer."""
    node = require_binary("node")
    [block] = fenced(section(page("alerts"), "Headers and signature"), "js")
    call = (
        "process.stdout.write(String(verify(process.env.SECRET, process.env.HEADER,"
        " Buffer.from(process.env.BODY, 'base64'))));"
    )
    env = {
        "PATH": os.environ["PATH"],
        "SECRET": secret,
        "HEADER": header,
        "BODY": base64.b64encode(body).decode(),
    }
    completed = subprocess.run(
        [node, "-e", block + "\n" + call],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return {"true": True, "false": False}[completed.stdout]


VERIFIERS: Final = {"python": _python_verify, "node": _node_verify}


def _signed(body: bytes = BODY, secret: str = SECRET, age: int = 0) -> str:
    """The X-ExESDB-Signature header the bridge sends ``body`` with, signed ``age`` s ago."""
    return Keyring.from_secrets(secret).sign_header(body, int(time.time()) - age)


@pytest.mark.parametrize("language", VERIFIERS)
def test_the_receiver_recipe_accepts_the_bridges_signature(language: str) -> None:
    """A delivery as the bridge signs it, and the same with a second v1 entry beside the one
    that matches (a key rotation), verify."""
    verify = VERIFIERS[language]
    assert verify(SECRET, _signed(), BODY)
    rotated = _signed().replace(",v1=", f",v1={'0' * 64},v1=")
    assert verify(SECRET, rotated, BODY)


# Each way a request differs from what the bridge signed: its header and body, made as the test
# runs (a header made at collection could be stale by then, refused for that alone).
UNSIGNED: Final[dict[str, Callable[[], tuple[str, bytes]]]] = {
    "the body changed": lambda: (_signed(), BODY.replace(b"firing", b"resolved")),
    "another key": lambda: (_signed(secret="another-secret-of-at-least-32-characters"), BODY),
    "signed ten minutes ago": lambda: (_signed(age=600), BODY),
    "no t": lambda: (_signed().split(",", 1)[1], BODY),
    "no v1": lambda: (_signed().split(",", 1)[0], BODY),
}


@pytest.mark.parametrize("language", VERIFIERS)
@pytest.mark.parametrize("why", UNSIGNED)
def test_the_receiver_recipe_refuses_what_the_bridge_did_not_sign(language: str, why: str) -> None:
    """A changed body, another key, a stale signature or a header missing a part is refused."""
    header, body = UNSIGNED[why]()
    assert not VERIFIERS[language](SECRET, header, body)
