"""The GraphQL schema: types from the policy table, limits, caches, masked errors."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from api.domain.errors import Refusal
from api.schema.lifecycle import RequestLifecycle, should_mask
from api.schema.mutation import Mutation
from api.schema.query import Query

MAX_DEPTH = 8
MAX_ALIASES = 30
MAX_TOKENS = 2000
CACHE_SIZE = 512


class _Schema(Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Refusals are answers, not faults: only unexpected errors reach the log."""
        super().process_errors([e for e in errors if e.original_error is not None
                                and not isinstance(e.original_error, Refusal)],
                               execution_context)


def build_schema(production: bool = False) -> Schema:
    """The schema; introspection is off in production."""
    extensions: list[type[SchemaExtension] | SchemaExtension | object] = [
        RequestLifecycle,
        lambda: MaskErrors(should_mask_error=should_mask),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return _Schema(query=Query, mutation=Mutation, extensions=extensions)  # type: ignore[arg-type]


schema = build_schema()
