"""The browser pages: GraphiQL at /graphql (development), the admin console at /console, and their
files under /assets; every answer carries a strict Content-Security-Policy.

The policy allows scripts and styles from this origin only (no inline script, no eval, no CDN)
and fetches to this origin only; fonts and images may also be data: URLs (GraphiQL's stylesheet
embeds its fonts). The pages hold no token: the console keeps it in the tab's sessionStorage.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.browser import assets

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _missing_page(missing: list[str]) -> str:
    pins = ", ".join(p.spec for p in assets.PACKAGES)
    items = "".join(f"<li><code>{html.escape(name)}</code></li>" for name in missing)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>GraphiQL is not installed</title>"
        "<link rel='stylesheet' href='/assets/page.css'></head><body><main>"
        "<h1>GraphiQL's files are not installed</h1>"
        f"<p>vaxvault serves GraphiQL from its own files ({html.escape(pins)}), never from a "
        "CDN, and these are missing:</p>"
        f"<ul>{items}</ul>"
        f"<p>To install them, {html.escape(assets.FETCH_HINT)}, then reload this page. "
        "GraphQL itself works without them: POST to <code>/graphql</code>.</p>"
        "</main></body></html>")


def graphiql(request: Request) -> Response:
    """GraphiQL's page, or a page saying which files are missing and how to fetch them."""
    missing = assets.missing()
    if missing:
        return HTMLResponse(_missing_page(missing), status_code=503, headers=SECURITY_HEADERS)
    return FileResponse(assets.STATIC_DIR / "graphiql.html", media_type="text/html",
                        headers=SECURITY_HEADERS)


async def console(request: Request) -> Response:
    return FileResponse(assets.STATIC_DIR / "console" / "index.html", media_type="text/html",
                        headers=SECURITY_HEADERS)


class _WithHeaders:
    """Adds the security headers to every answer of the wrapped app (the static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def routes() -> list[BaseRoute]:
    files: Any = _WithHeaders(StaticFiles(directory=assets.STATIC_DIR, check_dir=False))
    return [Route("/console", console), Mount("/assets", app=files)]
