"""The ASGI application: /graphql, /healthz, /readyz, /metrics, and the pages of api.browser."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL

from api.auth import TokenVerifier
from api.browser import pages
from api.compiled.asgi import CompiledReads
from api.compiled.compiler import Compiler
from api.compiled.trusted import prepare_trusted
from api.db.migrate import is_current
from api.db.pool import create_pool
from api.domain import restore_jobs
from api.domain.coverage import CoverageCache
from api.errors import AuthError
from api.graphql_http import ResponseMediaType
from api.http_body import replay as replay_body
from api.observability import Metrics, configure_logging, log_event
from api.principal import Principal
from api.schema import build_schema
from api.schema.context import Context
from api.schema.count_cache import CountCache
from api.schema.lifecycle import OPERATION_KEY
from api.settings import Settings
from api.trusted_documents import Manifest, TrustedDocuments

PRINCIPAL_KEY = "vaxvault.principal"
REQUEST_ID_KEY = "vaxvault.request_id"
# GraphQL requests are small; a larger body is refused before it is read into memory.
MAX_BODY_BYTES = 64 * 1024
# Operation names label metrics; past this many distinct names they count as "other".
MAX_OPERATION_LABELS = 200
# How old a coverage count may be (it aggregates every dose in scope).
COVERAGE_TTL_S = 5.0


class _GraphQL(GraphQL[Context, None]):
    def __init__(self, settings: Settings, state: dict[str, Any]) -> None:
        super().__init__(build_schema(settings.production),
                         graphql_ide=None if settings.production else "graphiql")
        self.settings = settings
        self.state = state
        self.coverage_cache = CoverageCache(ttl_s=COVERAGE_TTL_S)
        self.count_cache = CountCache(ttl_s=COVERAGE_TTL_S)

    async def render_graphql_ide(self, request: Any) -> Response:
        return pages.graphiql(request)  # served from local files, not strawberry's CDN template

    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(pool=self.state["pool"], settings=self.settings,
                       principal=request.scope[PRINCIPAL_KEY],
                       request_id=request.scope[REQUEST_ID_KEY], http_scope=request.scope,
                       coverage_cache=self.coverage_cache, count_cache=self.count_cache)


class _LimitBody:
    """Buffers the request body: 413 when it is over `limit` bytes (declared or streamed), 400
    when a JSON body is not an object."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"errors": [{"message": f"request body is larger than {self.limit} bytes; send a "
                                    "smaller query (use variables, not inlined data)",
                         "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}, status_code=413)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        whole = b"".join(chunks)
        replay = replay_body(whole, receive)

        # strawberry fails with a 500 on JSON that is not an object; answer it here instead.
        if _is_json(headers) and scope["method"] == "POST" and \
                not whole.lstrip().startswith(b"{"):
            response = JSONResponse(
                {"errors": [{"message": "the request body must be a JSON object "
                                        '{"query": ..., "variables": ...}',
                             "extensions": {"code": "BAD_REQUEST"}}]}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, replay, send)


def _is_json(headers: dict[bytes, bytes]) -> bool:
    return b"json" in headers.get(b"content-type", b"").lower()


class _Authenticate:
    """Verifies the bearer token before GraphQL sees the request; a bad token is a 401."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization")
        try:
            principal: Principal = self.verifier.verify(
                authorization.decode("latin-1") if authorization is not None else None)
        except AuthError as exc:
            response = JSONResponse(
                {"errors": [{"message": str(exc), "extensions": {"code": "UNAUTHENTICATED"}}]},
                status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)


class _Observe:
    """Request id, one log line and metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.operations: set[str] = set()

    def _label(self, operation: str) -> str:
        if operation in self.operations:
            return operation
        if len(self.operations) >= MAX_OPERATION_LABELS:
            return "other"
        self.operations.add(operation)
        return operation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given if given.isprintable() and given else uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            operation = self._label(scope.get(OPERATION_KEY, "-"))
            self.metrics.observe(scope["path"], operation, status, elapsed)
            log_event("request", method=scope["method"], path=scope["path"], status=status,
                      operation=operation, ms=round(elapsed * 1000, 2), request_id=request_id)


class _PostGraphQLFirst:
    """POST /graphql goes straight to the GraphQL stack; everything else (GET /graphql, the
    other routes, lifespan) through Starlette's router. Most requests are GraphQL POSTs, and
    the router and its middleware cost about a tenth of a compiled read's time in our process
    (py-spy, /work/notes/issue-10-compiled2.md). An exception still becomes uvicorn's 500."""

    def __init__(self, app: ASGIApp, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope["path"] == "/graphql" and not scope.get("root_path"):
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(settings: Settings) -> ASGIApp:
    """Build the application; the pool opens on startup and closes on shutdown."""
    configure_logging(settings.production)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings)
        try:
            yield
        finally:
            await restore_jobs.wait_all()  # a restore under way finishes and records its outcome
            await state["pool"].close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with state["pool"].acquire(timeout=2) as conn:
                current = await is_current(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return JSONResponse({"status": "unavailable", "reason": f"database: {exc}"},
                                status_code=503)
        if not current:
            return JSONResponse({"status": "unavailable", "reason": "migrations pending"},
                                status_code=503)
        return JSONResponse({"status": "ready"})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    strawberry_app = _GraphQL(settings, state)
    # Compiled reads are answered below strawberry; the rest goes on to it (api/compiled).
    compiler = Compiler(strawberry_app.schema, settings.production)
    reads = CompiledReads(strawberry_app, compiler, state, PRINCIPAL_KEY, REQUEST_ID_KEY)
    # Trusted documents come first: a refused document reaches neither path, and a persisted
    # hash is replaced by its document before either sees it. They are compiled now: one that
    # does not validate stops the start (SettingsError) instead of failing every request.
    manifest = Manifest.from_settings(settings)
    if manifest is not None:
        prepare_trusted(compiler, manifest)
    trusted = TrustedDocuments(reads, manifest,
                               settings.production, lambda scope: scope[PRINCIPAL_KEY].role)
    graphql = ResponseMediaType(_LimitBody(
        _Authenticate(trusted, TokenVerifier(settings)), MAX_BODY_BYTES))
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        *pages.routes(),
    ]
    metrics = Metrics(paths=[r.path for r in routes if isinstance(r, Route)],
                      mounts=[r.path for r in routes if isinstance(r, Mount)])
    app = Starlette(routes=routes, lifespan=lifespan)
    return _Observe(_PostGraphQLFirst(app, graphql), metrics)
