"""Whole answers to count-only queries, reused for a few seconds.

Dashboards ask the same coverage questions over and over; the answer holds no personal data
(nothing to audit) and a freeze never closes these roots. Executing it again costs more in
GraphQL field resolution than in SQL, so a query whose every root field is in COUNT_ROOTS is
answered from this cache when the same role and scope asked the same text with the same
variables less than `ttl_s` seconds ago.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import ExecutionResult, FieldNode, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from api.schema.context import Context
from api.ttl_cache import TtlCache

COUNT_ROOTS = frozenset({"coverage", "districts", "centers", "vaccines", "__typename"})


class CountCache(TtlCache[tuple[Any, ...], dict[str, Any]]):
    """Whole answers of count-only queries, by role, scope claims, text and variables."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s, max_entries, clock)


def _counts_only(document: Any, operation_name: str | None) -> bool:
    """True when the chosen operation is a query selecting only COUNT_ROOTS fields."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations
              if operation_name is None or (o.name is not None and o.name.value == operation_name)]
    if len(chosen) != 1 or chosen[0].operation is not OperationType.QUERY:
        return False
    return all(isinstance(s, FieldNode) and s.name.value in COUNT_ROOTS
               for s in chosen[0].selection_set.selections)


class CountCacheExtension(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        ctx = ec.context
        cache = ctx.count_cache if isinstance(ctx, Context) else None
        key = None
        if cache is not None and ec.graphql_document is not None \
                and _counts_only(ec.graphql_document, ec.operation_name):
            p = ctx.principal
            key = (p.role, p.center_id, p.district_id, ec.query, ec.operation_name,
                   json.dumps(ec.variables or {}, sort_keys=True, default=str))
            cached = cache.get(key)
            if cached is not None:
                ec.result = ExecutionResult(data=cached, errors=None)
                key = None
        yield
        result = ec.result
        if cache is not None and key is not None and isinstance(result, ExecutionResult) \
                and not result.errors and result.data is not None:
            cache.put(key, result.data)
