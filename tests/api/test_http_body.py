"""The request body's JSON is parsed once and handed on in the ASGI scope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.http_body import PARSED_KEY, parsed_json, remember, replay
from api.principal import Role
from api.trusted_documents import Manifest, TrustedDocuments, document_hash


def test_the_same_bytes_are_parsed_once() -> None:
    scope: dict[str, Any] = {}
    body = b'{"query": "{ me { role } }"}'
    first = parsed_json(scope, body)
    assert parsed_json(scope, body) is first
    # Equal bytes that are not the bytes handed on (a layer rewrote the body) parse afresh.
    assert parsed_json(scope, bytes(bytearray(body))) is not first


def test_a_rewritten_body_is_remembered_with_its_json() -> None:
    scope: dict[str, Any] = {}
    parsed_json(scope, b'{"query": "a"}')
    rewritten = {"query": "b"}
    body = json.dumps(rewritten).encode()
    remember(scope, body, rewritten)
    assert parsed_json(scope, body) is rewritten


def test_a_body_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parsed_json({}, b"{nope")


async def test_trusted_documents_hand_their_parse_to_the_next_layer() -> None:
    document = "query Me { me { role } }"
    seen: list[tuple[Any, Any]] = []

    async def next_layer(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        # What the trusted layer parsed (or wrote) is in the scope before this layer asks.
        body, value = scope[PARSED_KEY]
        assert body is message["body"]
        seen.append((parsed_json(scope, message["body"]), value))

    layer = TrustedDocuments(next_layer, Manifest({document_hash(document): document}),
                             production=True, role_of=lambda scope: Role.CENTER_STAFF)
    for request in ({"query": document},
                    {"extensions": {"persistedQuery": {"version": 1,
                                                       "sha256Hash": document_hash(document)}}}):
        body = json.dumps(request).encode()
        scope = {"type": "http", "method": "POST",
                 "headers": [(b"content-type", b"application/json")]}
        await layer(scope, replay(body, _disconnect), _no_send)
        parsed, kept = seen.pop()
        assert parsed is kept and parsed["query"] == document


async def _disconnect() -> Message:
    return {"type": "http.disconnect"}


async def _no_send(message: Message) -> None:
    raise AssertionError(f"nothing should be sent: {message}")
