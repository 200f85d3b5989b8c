"""The request around the operation: name it, then write the audit and commit, whatever failed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.domain.errors import Refusal
from api.errors import DatabaseUnavailable, InvalidText
from api.observability import log_event
from api.schema.context import Context

OPERATION_KEY = "vaxvault.operation"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RequestLifecycle(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context.context
        if isinstance(ctx, Context):
            name = self.execution_context.operation_name
            ctx.audit.operation = name if name and _NAME.match(name) else None
            if ctx.http_scope is not None:
                ctx.http_scope[OPERATION_KEY] = ctx.audit.operation or "anonymous"
        yield

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        ctx = self.execution_context.context
        if not isinstance(ctx, Context):
            return
        try:
            await ctx.session.finish(ctx.audit.pending())
        except Exception as exc:
            # Without its audit entry (or its commit) a response may not go out: withhold it.
            log_event("request not committed", error=type(exc).__name__,
                      request_id=ctx.request_id)
            result = self.execution_context.result
            if result is not None:
                result.data = None
                result.errors = [GraphQLError(
                    "The request could not be completed and no data is returned; try again.",
                    extensions={"code": "INTERNAL_SERVER_ERROR"})]


def should_mask(error: GraphQLError) -> bool:
    """Mask what the client cannot act on: anything raised that is not a Refusal."""
    original = error.original_error
    if original is None or isinstance(original, Refusal | DatabaseUnavailable | InvalidText):
        return False
    log_event("unexpected error", error=type(original).__name__, path=error.path)
    return True
