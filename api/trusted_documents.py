"""Trusted documents: the operations a portal ships, by hash; nothing else runs for non-admins.

A portal's build extracts its GraphQL operations into a manifest of sha256 -> document
(VAXVAULT_TRUSTED_DOCUMENTS). Clients send `extensions.persistedQuery.sha256Hash` (Apollo's
automatic persisted queries, APQ) instead of the text; this layer swaps the document in before
GraphQL sees the request. With a manifest loaded, every role but admin may run only manifest
documents. GET runs trusted documents only: query text in a URL travels through proxies and
access logs (a phone number in a filter, say), so it is refused in production always, and in
development unless it is itself a manifest document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from graphql import GraphQLSyntaxError, parse
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import SettingsError
from api.http_body import parsed_json, remember, replay
from api.principal import Role
from api.settings import Settings


def document_hash(document: str) -> str:
    """The APQ hash of a document: sha256 of its exact text, hex."""
    return hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    documents: Mapping[str, str]     # sha256 hex -> document text

    @classmethod
    def from_settings(cls, settings: Settings) -> Manifest | None:
        return cls.load(settings.trusted_documents) if settings.trusted_documents else None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest: {"<sha256>": "<document>", ...} or Apollo's persisted-query
        manifest ({"operations": [{"id", "body"}, ...]}). SettingsError naming what is wrong."""
        where = f"VAXVAULT_TRUSTED_DOCUMENTS={path}"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"{where}: cannot read it ({exc.strerror})") from exc
        except ValueError as exc:
            raise SettingsError(f"{where} is not JSON: {exc}") from exc
        if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
            pairs = [(op.get("id"), op.get("body")) if isinstance(op, dict) else (None, None)
                     for op in raw["operations"]]
        elif isinstance(raw, dict):
            pairs = list(raw.items())
        else:
            raise SettingsError(f"{where} must be a JSON object of sha256 -> document")
        documents: dict[str, str] = {}
        for key, document in pairs:
            if not isinstance(key, str) or not isinstance(document, str):
                raise SettingsError(f"{where}: every entry needs a sha256 id and a document text")
            if document_hash(document) != key.lower():
                raise SettingsError(f"{where}: entry {key} is not the sha256 of its document; "
                                    "regenerate the manifest from the portal's build")
            try:
                parse(document)
            except GraphQLSyntaxError as exc:
                raise SettingsError(f"{where}: document {key} does not parse: {exc.message}") \
                    from exc
            documents[key.lower()] = document
        return cls(documents)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class TrustedDocuments:
    """ASGI layer in front of GraphQL (after authentication, on a buffered body)."""

    def __init__(self, app: ASGIApp, manifest: Manifest | None, production: bool,
                 role_of: Callable[[Scope], Role]) -> None:
        self.app = app
        self.manifest = manifest
        self.production = production
        self.role_of = role_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] == "GET":
                scope = self._get(scope)
            elif scope["method"] == "POST":
                receive = await self._post(scope, receive)
        except _Refused as refusal:
            response = JSONResponse({"errors": [{"message": str(refusal),
                                                 "extensions": {"code": refusal.code}}]},
                                    status_code=refusal.status)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _resolve(self, scope: Scope, query: str | None, extensions: Any) -> str | None:
        """The document to run: the manifest's for a hash, else `query` if it may run."""
        wanted = _sha256(extensions)
        documents = self.manifest.documents if self.manifest else {}
        if wanted is not None:
            if query is not None and document_hash(query) != wanted:
                raise _Refused(400, "BAD_REQUEST", f"the query text does not hash to {wanted}")
            if wanted in documents:
                return documents[wanted]
            if query is None or not self._free(scope):
                # APQ clients answer this by sending the text; only admin's text would run.
                raise _Refused(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
            return query
        if query is None or document_hash(query) in documents or self._free(scope):
            return query
        raise _Refused(400, "TRUSTED_DOCUMENT_REQUIRED",
                       "only the portal's trusted documents run here; send "
                       "extensions.persistedQuery.sha256Hash of a manifest document")

    def _free(self, scope: Scope) -> bool:
        """Whether this request may run a document outside the manifest."""
        return self.manifest is None or self.role_of(scope) is Role.ADMIN

    def _get(self, scope: Scope) -> Scope:
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        query = params.get("query")
        wanted = _sha256(_json_param(params.get("extensions")))
        if query is None and wanted is None:
            return scope  # the GraphiQL page, or strawberry's own "no query" answer
        documents = self.manifest.documents if self.manifest else {}
        key = wanted or document_hash(query or "")
        if query is not None and (self.production or key not in documents):
            raise _Refused(400, "GET_QUERY_TEXT_REFUSED",
                           "GET runs trusted documents only (query text in a URL ends up in "
                           "access logs); send extensions.persistedQuery.sha256Hash or POST")
        if key not in documents:
            raise _Refused(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        if query is not None and document_hash(query) != key:
            raise _Refused(400, "BAD_REQUEST", f"the query text does not hash to {key}")
        params["query"] = documents[key]
        return {**scope, "query_string": urlencode(params).encode()}

    async def _post(self, scope: Scope, receive: Receive) -> Receive:
        message = await receive()
        body = message.get("body", b"")
        headers = dict(scope.get("headers") or [])
        if b"json" not in headers.get(b"content-type", b"").lower():
            if self._free(scope):
                return replay(body, receive)
            raise _Refused(415, "TRUSTED_DOCUMENT_REQUIRED",
                           "send trusted documents as JSON (application/json)")
        try:
            data = parsed_json(scope, body)
        except ValueError:
            return replay(body, receive)  # strawberry explains malformed JSON itself
        if not isinstance(data, dict):
            return replay(body, receive)
        query = data.get("query") if isinstance(data.get("query"), str) else None
        document = self._resolve(scope, query, data.get("extensions"))
        if document is None or document == query:
            return replay(body, receive)
        rewritten = {**data, "query": document}
        body = json.dumps(rewritten).encode()
        remember(scope, body, rewritten)
        return replay(body, receive)


def _sha256(extensions: Any) -> str | None:
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    value = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    return value.lower() if isinstance(value, str) else None


def _json_param(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise _Refused(400, "BAD_REQUEST", f"extensions={value!r} is not JSON") from exc
