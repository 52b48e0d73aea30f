"""The pages' routes: ``GET /``, ``GET /alerts/{alert_id}`` and their static files.

Each page is sent with a strict Content-Security-Policy (scripts and styles only from this
bridge, none inline).

``?part=live`` answers only the part of a page that refreshes (pages.js swaps it in place),
with an ETag: asked again with it in ``If-None-Match`` while unchanged, it is answered 304
(``conditional``). The live part holds the moments (pages.js counts the ages), so time passing
alone changes nothing; the page as first sent shows the ages at that time, so that it reads
right without the script, and carries the ETag of the live part it stands for. The status
page's live part is rendered again only when what it shows changed (``StatusView``).
``/alerts`` (an alert's link cut short) leads to the status page's alerts, ``/alerts/{alert_id}/``
to the alert's page. A path nothing is served at is answered by ``missing``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Final, Generic, TypeVar
from urllib.parse import quote

from aiohttp import web

from bridge.pages.alert import GONE, acknowledgeable, alert_live, not_found_live
from bridge.pages.conditional import Rendered, answer
from bridge.pages.html import Html
from bridge.pages.sources import Shown, alert_source, down_source, lease_state, node_source
from bridge.pages.status import StatusView, status_live, status_view
from bridge.pages.widgets import layout
from bridge.routes import ALERT_ID_SEGMENT

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_HEADERS", "page_routes"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Each answer is the state of the moment; nothing a shared cache should keep.
    "Cache-Control": "no-store",
}
_STATIC: Final = {
    "pages.css": "text/css; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# The relative way back to / from each page, so links work behind a proxy under any path.
_FROM_ROOT: Final = "./"
_FROM_ALERT: Final = "../"
# The status page as first sent is rendered again only past this (its ages show whole seconds):
# a client asking for / in a loop costs at most one render a second.
_AGES_KEPT_SECONDS: Final = 1.0

_T = TypeVar("_T")


def _live_only(request: web.Request) -> bool:
    return request.query.get("part") == "live"


class _Shared(Generic[_T]):
    """One render at a time, shared by the requests that arrived before it started.

    The status page cost about 100 ms of the event loop with its 200 nodes and 400 alerts (now
    rendered only when what it shows changed, read each time); each page open in a browser asks
    for it every 5 s, and anyone reaching the port may ask in a loop: renders side by side held
    the loop for as long as they took together, the probes waiting behind them (ten clients
    asking in a loop: /healthz answered in up to 1.7 s). A request waits for the render under
    way, if any, then takes one started after it arrived: as fresh as its own (an
    acknowledgement made before it is shown), made once for all who waited.
    """

    __slots__ = ("_asking", "_clock", "_lock", "_render", "_rendered", "_started")

    def __init__(self, render: Callable[[float], Awaitable[_T]], clock: Callable[[], float]):
        self._render = render
        self._clock = clock
        self._lock = asyncio.Lock()
        self._rendered: _T | None = None
        self._started = -1.0  # the loop's time when the render in _rendered started
        self._asking = 0  # requests waiting for a render or taking one

    async def __call__(self) -> _T:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        self._asking += 1
        try:
            async with self._lock:  # first come, first served
                if self._rendered is None or self._started < arrived:
                    self._started = loop.time()
                    self._rendered = None  # not kept past a failed render
                    self._rendered = await self._render(self._clock())
                return self._rendered
        finally:
            self._asking -= 1
            if not self._asking:
                self._rendered = None  # kept only while someone may share it


def page_routes(shown: Shown) -> list[web.RouteDef]:
    """The routes of the pages, reading ``shown`` (its clock too); open to anyone who reaches
    the port, as ``/metrics`` is (the web config's basic auth applies to them as to every route).

    The components the pages query are found here, once: ``shown``'s components are built
    before its routes are."""
    folder = files("bridge.pages").joinpath("static")
    static = {name: folder.joinpath(name).read_bytes() for name in _STATIC}
    clock = shown.clock
    alerts = alert_source(shown)
    nodes = node_source(shown)
    down = down_source(shown)

    last: tuple[StatusView, Rendered] | None = None
    # The last live part with its ages, the view it shows and the time of its ages.
    aged: tuple[StatusView, float, Html] | None = None

    async def render_status(now: float) -> tuple[StatusView, Rendered]:
        nonlocal last
        view = await status_view(
            shown, alerts_from=alerts, nodes_from=nodes, down_from=down, now=now
        )
        # Comparing the view costs a fraction of rendering it (400 alerts: 0.3 ms against 25 ms).
        if last is None or last[0] != view:
            last = (view, Rendered(status_live(view, shown, root=_FROM_ROOT, now=None)))
        return last

    status_now = _Shared(render_status, clock)

    def with_ages(view: StatusView, now: float) -> Html:
        nonlocal aged
        if aged is None or aged[0] != view or not 0 <= now - aged[1] < _AGES_KEPT_SECONDS:
            aged = (view, now, status_live(view, shown, root=_FROM_ROOT, now=now))
        return aged[2]

    async def status_page(request: web.Request) -> web.Response:
        """The status page: readiness, nodes, active alerts."""
        now = clock()
        view, live = await status_now()
        if _live_only(request):
            return answer(request, live, PAGE_HEADERS)
        page = layout(
            shown,
            title="Status",
            root=_FROM_ROOT,
            live=with_ages(view, now),
            etag=live.etag,
            now=now,
        )
        return answer(request, Rendered(page), PAGE_HEADERS, tagged=False)

    async def alert_page(request: web.Request) -> web.Response:
        """One alert: labels, annotations, history and deliveries; 404 page when unknown."""
        now = clock()
        alert_id = request.match_info["alert_id"]
        detail = await alerts.alert_detail(alert_id) if alerts is not None else None
        lease = lease_state(alerts)
        if detail is None:
            gone = Rendered(
                not_found_live(alert_id, kept=alerts is not None, root=_FROM_ALERT, lease=lease)
            )
            if _live_only(request):
                return answer(request, gone, PAGE_HEADERS, status=404)
            page = layout(
                shown,
                title="No such alert",
                root=_FROM_ALERT,
                live=gone.html,
                etag=gone.etag,
                now=now,
                refresh=0,
                ack_hidden=True,  # nothing to acknowledge, and never refreshed into something
            )
            return answer(request, Rendered(page), PAGE_HEADERS, status=404)
        assert alerts is not None  # a detail came from it
        recipients = alerts.recipients()
        live = Rendered(alert_live(detail, recipients, shown, now=None, lease=lease))
        if _live_only(request):
            return answer(request, live, PAGE_HEADERS)
        page = layout(
            shown,
            title=detail.alert.title,
            root=_FROM_ALERT,
            live=alert_live(detail, recipients, shown, now=now, lease=lease),
            etag=live.etag,
            now=now,
            gone=GONE,
            ack_hidden=not acknowledgeable(detail.alert),
        )
        return answer(request, Rendered(page), PAGE_HEADERS, tagged=False)

    async def alert_page_slashed(request: web.Request) -> web.Response:
        """``/alerts/{alert_id}/`` (a link with a slash added): on to the alert's page, by a
        relative path (``../`` and the id, percent-encoded whole): never another origin."""
        target = "../" + quote(request.match_info["alert_id"], safe="")
        if request.rel_url.raw_query_string:
            # As it came, still percent-encoded: decoded, ?a=%23b would end in a fragment.
            target += "?" + request.rel_url.raw_query_string
        raise web.HTTPMovedPermanently(target)

    async def alerts_list(request: web.Request) -> web.Response:
        """``/alerts`` or ``/alerts/`` (an alert's link cut short): the status page's alerts."""
        back = _FROM_ALERT if request.path.endswith("/") else _FROM_ROOT
        raise web.HTTPFound(back + "#alerts")

    async def static_file(request: web.Request) -> web.Response:
        """The pages' stylesheet, script and icon."""
        name = request.match_info["name"]
        if name not in static:
            raise web.HTTPNotFound()  # answered as any path nothing is served at (``missing``)
        return web.Response(
            body=static[name],
            headers={
                "Content-Type": _STATIC[name],
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    return [
        web.get("/", status_page),
        web.get("/alerts", alerts_list),
        web.get("/alerts/", alerts_list),
        web.get(f"/alerts/{ALERT_ID_SEGMENT}", alert_page),
        web.get(f"/alerts/{ALERT_ID_SEGMENT}/", alert_page_slashed),
        web.get("/static/{name}", static_file),
    ]
