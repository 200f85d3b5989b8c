"""GraphQL over HTTP media types: `application/graphql-response+json` beside `application/json`.

A client that prefers `application/graphql-response+json` in Accept gets it, with the status codes
the GraphQL-over-HTTP specification gives it: a *request error* (the document did not parse or
validate, variables could not be coerced: nothing executed, so no `data` and no error `path`)
is a 400 with no `data` entry; a response with data is a 200 even when some fields failed.
A client that asks for `application/json` (or sends no Accept, or */*) keeps the legacy answers:
200 with `"data": null`. Accept naming neither is refused with 406.

An ASGI wrapper around /graphql, so it also types the 400/401/413 answers given before GraphQL.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_JSON_FAMILY = ("application/json", "*/*", "application/*")


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """Accept's media ranges with their q-values, in the order given."""
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None when Accept allows neither.

    No Accept header means application/json (what clients before the media type expect); when both
    are acceptable, the higher q wins and a tie goes to the one listed first.
    """
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, str] | None = None
    for media, quality in _media_ranges(accept):
        if quality <= 0:
            continue
        chosen = GRAPHQL_RESPONSE if media == GRAPHQL_RESPONSE else \
            JSON if media in _JSON_FAMILY else None
        if chosen is not None and (best is None or quality > best[0]):
            best = (quality, chosen)
    return best[1] if best else None


def is_request_error(body: Any) -> bool:
    """True for a response to a request that never executed: errors, no data, and no error
    located in the result (a field error always has a `path`)."""
    if not isinstance(body, dict) or body.get("data") is not None:
        return False
    errors = body.get("errors")
    return isinstance(errors, list) and bool(errors) and \
        all(isinstance(e, dict) and "path" not in e for e in errors)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class ResponseMediaType:
    """Answers /graphql in the media type the client accepts (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = _header(scope, b"accept")
        chosen = negotiate(accept)
        if chosen is None and "text/html" not in (accept or ""):
            await _send_json(send, 406, JSON, {"errors": [{"message": (
                f"Accept: {accept} allows no type this endpoint answers; accept "
                f"{GRAPHQL_RESPONSE} or {JSON}"), "extensions": {"code": "NOT_ACCEPTABLE"}}]})
            return
        if chosen != GRAPHQL_RESPONSE:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _answer(send, start, b"".join(chunks))

        await self.app(scope, receive, hold)


async def _answer(send: Send, start: Message, body: bytes) -> None:
    """Re-type a JSON answer as graphql-response+json; a request error becomes a 400 without data."""
    headers = [(k, v) for k, v in start.get("headers", [])
               if k.lower() not in (b"content-type", b"content-length")]
    original_type = dict(start.get("headers", [])).get(b"content-type", b"")
    status = start["status"]
    if not original_type.startswith(JSON.encode()):
        await send({**start, "headers": [*headers, (b"content-type", original_type),
                                         (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if status == 200 and is_request_error(document):
        status = 400
        document.pop("data", None)
        body = json.dumps(document, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        *headers, (b"content-type", f"{GRAPHQL_RESPONSE}; charset=utf-8".encode()),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, media_type: str, document: Any) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", f"{media_type}; charset=utf-8".encode()),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
