"""The pages for people: a status page at ``/`` and a page behind every alert's ``generatorURL``.

Part of the HTTP edge (``bridge.http`` adds ``page_routes``). ``html`` renders safely (every
value escaped unless it is markup made here), ``widgets`` holds what pages share, ``status`` and
``alert`` build each page from what ``sources`` finds (the alert sink's and the Prometheus sink's
public queries), ``routes`` serves them with a strict Content-Security-Policy, ``conditional``
answers a refresh of an unchanged page 304 and gzips the rest, ``missing`` answers a path nothing
is served at (a page for a browser, the JSON error for the rest). Templates, the stylesheet and the
script ship as package data: no CDN, no build step, works offline.
"""

from __future__ import annotations

from bridge.pages.missing import not_found
from bridge.pages.routes import CONTENT_SECURITY_POLICY, PAGE_HEADERS, page_routes

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_HEADERS", "not_found", "page_routes"]
