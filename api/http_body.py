"""Handing a request body that one ASGI layer has read on to the next layer."""

from __future__ import annotations

from starlette.types import Message, Receive


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
