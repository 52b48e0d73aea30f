"""The HTTP listener: a connection cap that keeps room for probes, deadlines on heads and bodies.

aiohttp closes a connection idle for ``EXESDB_HTTP_IDLE_TIMEOUT_MS`` itself (its
``keepalive_timeout``, counted from the accept since aiohttp 3.14.4, the lowest version allowed,
or from the last response), until a request head begins: that timer is then dropped (its public
``keep_alive``), so that a head begun just before it is timed by the header timeout alone. The
rest is here, around
aiohttp's protocol (an ``asyncio.Protocol`` wrapped, and its public ``handle_error`` replaced;
nothing of aiohttp's private API):

- a request head must arrive complete within ``EXESDB_HTTP_HEADER_TIMEOUT_MS`` of its first byte
  (a TLS handshake within as long), and a body within ``EXESDB_HTTP_BODY_TIMEOUT_MS`` of its head,
  or of the ``100 Continue`` that asked for it (``bridge.expect_continue``: not while the bridge
  checks the head) (else 408, and the connection closes): a trickle holds a connection for a
  bounded time;
- at most ``EXESDB_HTTP_MAX_CONNECTIONS`` connections, lowered to what the descriptor limit
  allows, each counted from its accept: at the cap a new connection closes the one idle longest
  (no request in progress, or a TLS handshake not finished), so a flood of idle connections or
  half-open handshakes cannot lock the probes out; with none idle, it closes the body read going
  slowest (bytes a second since its head, or its ``100 Continue``, once ``BODY_GRACE`` has
  passed; not one whose ``100 Continue`` is still owed: ``bridge.expect_continue``), so trickled
  bodies cannot lock ingest out; when every connection is busy otherwise, up to ``RESERVE`` more
  are taken for ``/healthz``, ``/readyz`` and ``/metrics`` only;
- the bodies of the requests in progress hold at most ``EXESDB_MAX_BODIES_BYTES`` in all
  (unset: ``BODIES_HELD``, or twice ``EXESDB_MAX_BODY_BYTES``): past it the slowest body read is
  closed, as at the cap, else the request whose bytes went past is answered 503 (its signature,
  checked once its body is in, cannot keep anyone from sending one);
- a request head (counted as it arrives, before aiohttp's parser, which bounds each line but not
  their sum: ``heads.py``) may total ``HEAD_MAX`` bytes, else 431 and its connection closes;
  the heads of the requests in progress, from their first byte to their answer, hold at most
  ``HEADS_HELD`` in all: past it the stalled connection (below) holding the most of them is
  closed, else the head arriving slowest (or, once whole, its body), else the request whose
  bytes went past is answered 503;
- a request sent behind one in progress (pipelined) is read once that one's answer is sent
  (``Connection.read_ahead``, as the request's task ends), reading paused meanwhile, as Go's
  server reads one at a time:
  aiohttp's parser read on and kept up to 32 requests, their heads whole; what a connection
  holds back meanwhile (a read, up to 256 KiB) counts against ``HEADS_HELD`` until read; a
  request's body is handed to the parser up to its end (``framing.py``: its Content-Length, or
  its last chunk), and what follows it is the next head, counted and timed as any;
- requests sent whole before the client shuts its side of the connection (``SHUT_WR``) are
  each answered, then the connection closes (aiohttp closed it at once, the answers lost);
- at most ``MAX_STALLED`` connections may hold an answer their client does not read (past the
  transport's high-water mark): one more closes the one stalled longest, so clients that never
  read ``/metrics`` hold a bounded amount of memory, not a whole exposition each;
- an answer its client takes nothing of (its receive window shut) for
  ``EXESDB_HTTP_WRITE_TIMEOUT_MS`` resets its connection: the kernel's ``TCP_USER_TIMEOUT``, set
  on each socket at its accept, so that what the kernel's send buffer holds of it (a whole
  exposition, up to 4 MiB a connection, the bridge holding nothing) is let go also after the
  bridge has closed the connection (an orphan socket, held for minutes otherwise);
- each answer is sent here and its body let go (aiohttp keeps a keep-alive connection's last
  request and response until its next request), so an idle connection does not hold the page
  it last got; a request whose head (its target and fields) is over ``HEAD_KEPT`` is
  answered, then its connection closes, so that it does not hold the head;
- connections are accepted here (``Listener``), not by an ``asyncio.Server``, only while the
  descriptors they hold stay within the cap, the reserve and one burst of accepts: asyncio's
  own accept loop takes up to a backlog of connections each time the listening socket is
  ready, several bursts before the idle connections evicted for them have let their
  descriptors go, and clients connecting at once ran the process out of descriptors;
- with TLS, a connection whose first bytes are a plain HTTP request is answered 400 with Go's
  words and closed, as exporter-toolkit's exporters answer it (asyncio's TLS would close it
  with no answer); any other first bytes go to the TLS handshake;
- at start the soft descriptor limit is raised to the hard one;
- no answer carries a Server header (aiohttp's names the Python and aiohttp versions);
- a request line may be up to ``LINE_MAX`` bytes (aiohttp's default is 8 190), so that the
  link of an alert with the longest id reaches its page and its acknowledgement;
- a request head aiohttp's parser refuses is answered 400 in the one error shape, naming the
  problem and quoting none of the request (aiohttp's own answer quotes the line at fault);
- a request naming an HTTP version other than 1.0 and 1.1 (``HTTP/2.0``, ``HTTP/0.9``, which
  aiohttp's parser takes) is answered ``HTTP/1.1 505``, and its connection closes, as Go's
  servers answer it;
- a request asking to switch protocols (``Connection: upgrade`` with ``Upgrade: h2c``, or
  ``CONNECT``), which the bridge never does, is answered with ``Connection: close``: aiohttp's
  parser drops what arrived with it, and a request pipelined after it went unanswered.

The parts: ``guard.py`` counts, caps and times the connections and is the server's middleware;
``connection.py`` is one connection as the guard sees it; ``budgets.py`` bounds the bytes the
heads and bodies in progress hold, for the guard; ``heads.py`` counts each head as it arrives and
words the answer to one refused before it is whole; ``framing.py`` finds where each body ends;
``plain_http.py`` tells plain HTTP from a TLS handshake; ``handshakes.py`` counts the handshakes
that failed; ``accept.py`` accepts within the descriptor budget; ``sockets.py`` binds the
listening sockets and raises the descriptor limit; ``server_header.py`` takes aiohttp's Server
header off every answer; ``versions.py`` marks the requests in a version not served, which the
guard answers 505; ``refusals.py`` makes each connection's aiohttp protocol, whose parser's
refusals it words.
"""

from __future__ import annotations

from bridge.listener.accept import Listener
from bridge.listener.budgets import BODIES_HELD
from bridge.listener.guard import (
    BODY_GRACE,
    CLOSE_AFTER,
    HEAD_KEPT,
    MAX_STALLED,
    PROBE_PATHS,
    RESERVE,
    ConnectionGuard,
    Limits,
)
from bridge.listener.heads import HEAD_MAX, HEADS_HELD
from bridge.listener.refusals import LINE_MAX, named_refusals
from bridge.listener.server_header import no_server_header
from bridge.listener.sockets import raise_descriptor_limit
from bridge.listener.versions import refuse_other_versions

__all__ = [
    "BODIES_HELD",
    "BODY_GRACE",
    "CLOSE_AFTER",
    "HEADS_HELD",
    "HEAD_KEPT",
    "HEAD_MAX",
    "LINE_MAX",
    "MAX_STALLED",
    "PROBE_PATHS",
    "RESERVE",
    "ConnectionGuard",
    "Limits",
    "Listener",
    "named_refusals",
    "no_server_header",
    "raise_descriptor_limit",
    "refuse_other_versions",
]
