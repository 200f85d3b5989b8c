"""The GraphQL schema: types from the policy table, limits, caches, masked errors."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from api.domain.errors import Refusal
from api.schema.count_cache import CountCacheExtension
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


def _limit_rules(production: bool) -> list[Any]:
    """Validation rules built once: the limiters create a rule class per instance, and the
    validation cache keys on the rule classes, so per-request instances would never hit it."""
    rules = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
             *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(production: bool = False) -> Schema:
    """The schema; introspection is off in production."""
    rules = _limit_rules(production)
    extensions: list[Any] = [
        RequestLifecycle,
        CountCacheExtension,
        lambda: MaskErrors(should_mask_error=should_mask),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
    ]
    return _Schema(query=Query, mutation=Mutation, extensions=extensions)


schema = build_schema()
