"""Handing a request body that one ASGI layer has read on to the next layer, and its JSON
parsed once for all of them."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive, Scope

# The scope key holding (body, its JSON) for the layers after the first that parsed it.
PARSED_KEY = "vaxvault.parsed_body"


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that first delivers `body` whole, then whatever `receive` delivers (the
    disconnect). Each layer that must read the body (size guard, trusted documents, compiled
    reads) hands it on with this instead of a copy of its own."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def parsed_json(scope: Scope, body: bytes) -> Any:
    """`body` as JSON, parsed by the first layer that asks and kept in the scope for the next
    (trusted documents, then compiled reads). The cached value is used only for the very same
    bytes object, so a layer that rewrote the body without `remember` gets it parsed afresh.
    ValueError for a body that is not JSON."""
    cached = scope.get(PARSED_KEY)
    if cached is not None and cached[0] is body:
        return cached[1]
    value = json.loads(body)
    remember(scope, body, value)
    return value


def remember(scope: Scope, body: bytes, value: Any) -> None:
    """Record that `body` (handed on to the next layer) is the JSON of `value`."""
    scope[PARSED_KEY] = (body, value)
