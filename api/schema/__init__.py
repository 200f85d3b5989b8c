"""The GraphQL schema (strawberry)."""

from __future__ import annotations

import strawberry

from api.schema.context import Context


@strawberry.type
class District:
    id: strawberry.ID
    name: str
    division: str


@strawberry.type
class Query:
    @strawberry.field(description="The 64 districts. Public.")
    async def districts(self, info: strawberry.Info[Context, None]) -> list[District]:
        async with info.context.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, name, division FROM districts ORDER BY id")
        return [District(id=strawberry.ID(str(r["id"])), name=r["name"], division=r["division"])
                for r in rows]


schema = strawberry.Schema(query=Query)
