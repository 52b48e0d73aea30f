"""The answer to a path nothing is served at: a page for a browser, the JSON error for the rest.

A browser navigating (its ``Accept`` ranks ``text/html`` above ``application/json``) to a page
that is not there (``/index.html``, a link cut short) is shown the pages' 404 page, with their
headers; every other client (``Accept: application/json``, curl's ``*/*``, none at all) and every
path under ``/v1/`` (the API, whatever asks) gets ``bridge.routes.error_response``'s body, each
with ``Vary: Accept`` outside ``/v1/``, naming the path served that the one asked is spelt
nearly as (``/metrics/``, ``/health``). The page names no path: what a link put there is not
repeated back. A path deeper than ``_DEEPEST`` levels gets the JSON error too: the page's links
climb back level by level (``../``), ~10 times over, and a request line of 50 kB of slashes made
a page of 1.5 MB.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from bridge.choices import meant_said, word_meant
from bridge.pages.conditional import LIST_ITEMS_READ, Rendered, answer
from bridge.pages.html import template
from bridge.pages.routes import PAGE_HEADERS
from bridge.pages.sources import Shown
from bridge.pages.widgets import layout
from bridge.routes import error_response

__all__ = ["not_found"]

# What a browser asks for when it navigates; JSON is what an API client asks for.
_PAGE_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_JSON: Final = "application/json"
# Levels of a path the 404 page is shown for at most (the bridge serves two, a proxy adds some).
_DEEPEST: Final = 64
_API: Final = "/v1/"
_NOTHING_HERE: Final = "nothing is served at this path"
_PATH_LIKENESS: Final = 0.8
# The paths other tools probe for what the bridge serves under another name: Kubernetes'
# components (/livez), Prometheus and Alertmanager (/-/healthy, /-/ready).
_OTHER_NAMES: Final = {
    "/livez": "/healthz",
    "/-/healthy": "/healthz",
    "/-/ready": "/readyz",
}


def not_found(request: web.Request, shown: Shown) -> web.Response:
    """404 for ``request``: the 404 page when a browser navigates outside ``/v1/``, else the
    JSON error ``not_found``."""
    if request.path.startswith(_API):
        return error_response(404, "not_found", _nothing_here(request))
    depth = _depth(request.raw_path)
    if (
        request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
        and depth <= _DEEPEST
        and _ranks_html_first(",".join(request.headers.getall(hdrs.ACCEPT, ())))
    ):
        root = "../" * depth if depth > 0 else "./"
        live = template("missing.html")(root=root)
        page = layout(
            shown,
            title="Not found",
            root=root,
            live=live,
            etag=Rendered(live).etag,
            now=shown.clock(),
            refresh=0,
            ack_hidden=True,  # nothing to acknowledge, and never refreshed into something
        )
        response = answer(request, Rendered(page), PAGE_HEADERS, status=404)
        response.headers[hdrs.VARY] = f"{hdrs.ACCEPT}, {hdrs.ACCEPT_ENCODING}"
        return response
    response = error_response(404, "not_found", _nothing_here(request))
    response.headers[hdrs.VARY] = hdrs.ACCEPT
    return response


def _nothing_here(request: web.Request) -> str:
    """The 404's detail: nothing is served at ``request``'s path, and the fixed path the bridge
    serves that it is spelt nearly as, if any (``/metrics/``, ``/health``, ``/v1/alert``: a
    probe or scrape set up so would otherwise fail with no hint), that another tool's
    convention names so (``/livez``, ``/-/healthy``), or that it ends in
    (``/v1/messages/v1/messages``: a URL with a path given as the bridge's)."""
    served = [
        resource.canonical
        for resource in request.app.router.resources()
        # Not the top: every short path is alike it. Nor a pattern's ({alert_id}).
        if resource.canonical != "/" and "{" not in resource.canonical
    ]
    # Closer than difflib's default: /v1/alerts/a1/nope (an ack's path mistyped) is no list.
    aliases = {alias: path for alias, path in _OTHER_NAMES.items() if path in served}
    asked = request.path.rstrip("/")
    meant = word_meant(asked, served, aliases, likeness=_PATH_LIKENESS)
    if meant is None:
        # A served path after a prefix: a client given the bridge's URL with a path, such as
        # EXESDB_URL=http://host:9570/v1/messages, puts its own path after it (the longest:
        # /x/v1/alerts means /v1/alerts, not /alerts).
        meant = max((path for path in served if asked.endswith(path)), key=len, default=None)
    return _NOTHING_HERE if meant is None else f"{_NOTHING_HERE}; {meant_said(meant, name=True)}"


def _ranks_html_first(accept: str) -> bool:
    """Whether ``accept`` ranks HTML above JSON, as a browser's navigation does
    (``text/html,…,*/*;q=0.8``); ``*/*`` alone, none, or JSON as high: an API client. Its
    first ``LIST_ITEMS_READ`` media ranges only."""
    html = json = 0.0
    for item in accept.split(",", LIST_ITEMS_READ)[:LIST_ITEMS_READ]:
        media, *parameters = (part.strip() for part in item.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # a weight no one can read ranks nothing
        media = media.lower()
        if media in _PAGE_TYPES:
            html = max(html, weight)
        elif media == _JSON:
            json = max(json, weight)
    return html > json


def _depth(raw_path: str) -> int:
    """Levels below ``/`` of ``raw_path`` (as the browser sent it): the page's root is ``../``
    as many times, so that its links and files work behind a proxy under any path (``./`` at
    the top)."""
    return raw_path.split("?", 1)[0].count("/") - 1
