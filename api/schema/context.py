"""What every resolver receives: the pool, the principal and the request's identity."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from api.principal import Principal
from api.settings import Settings


@dataclass
class Context:
    pool: asyncpg.Pool
    settings: Settings
    principal: Principal
    request_id: str
