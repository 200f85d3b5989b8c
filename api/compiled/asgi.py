"""The ASGI path below strawberry: compiled reads are answered with the bytes PostgreSQL built;
everything else (and anything that goes wrong before an answer exists) goes on to strawberry."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from api.compiled.compiler import Compiler
from api.http_body import parsed_json, replay
from api.observability import log_event
from api.schema.lifecycle import OPERATION_KEY

# The compiled path answers application/json; a client that may take that gets it. One that
# asks for the GraphQL-over-HTTP media type (or only for others) gets strawberry's negotiation.
_JSON_RANGES = frozenset({b"application/json", b"application/*", b"*/*"})


def _takes_plain_json(accept: bytes) -> bool:
    ranges = {part.split(b";")[0].strip().lower() for part in accept.split(b",")} - {b""}
    if any(b"graphql-response" in r for r in ranges):
        return False
    return not ranges or bool(ranges & _JSON_RANGES)


class CompiledReads:
    def __init__(self, app: ASGIApp, compiler: Compiler, state: dict[str, Any],
                 principal_key: str, request_id_key: str) -> None:
        self.app = app
        self.compiler = compiler
        self.state = state
        self.principal_key = principal_key
        self.request_id_key = request_id_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or scope["method"] != "POST" or \
                b"json" not in headers.get(b"content-type", b"") or \
                not _takes_plain_json(headers.get(b"accept", b"")):
            await self.app(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        answer = None
        try:
            request = parsed_json(scope, body)
            query, name = request.get("query"), request.get("operationName")
            variables = request.get("variables") or {}
            if isinstance(query, str) and isinstance(variables, dict) and \
                    (name is None or isinstance(name, str)):
                answer = await self.compiler.answer(
                    self.state["pool"], scope[self.principal_key],
                    scope[self.request_id_key], query, name, variables)
        except Exception as exc:
            # strawberry answers instead, with its own error handling; nothing was sent yet.
            log_event("compiled path fell back", error=type(exc).__name__,
                      request_id=scope.get(self.request_id_key))
        if answer is None:
            await self.app(scope, receive, send)
            return
        scope[OPERATION_KEY] = answer.operation
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer.body)).encode())]})
        await send({"type": "http.response.body", "body": answer.body})


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a receive that hands it over again to the next app."""
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    return body, replay(body, receive)
