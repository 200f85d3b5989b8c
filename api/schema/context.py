"""What every resolver receives: the principal, its database session, audit trail and loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from strawberry.dataloader import DataLoader

from api.db.session import Session
from api.domain import audit, doses, recipients
from api.domain.audit import AccessEntry, AccessPage, AuditTrail
from api.domain.coverage import CoverageCache
from api.domain.records import Dose, Recipient
from api.policy import Freeze
from api.principal import Principal
from api.settings import Settings

if TYPE_CHECKING:
    from api.schema.count_cache import CountCache


@dataclass
class Loaders:
    """Per-request DataLoaders: nested lists cost one statement per level, not per row."""

    recipient: DataLoader[int, Recipient | None]
    doses: DataLoader[int, list[Dose]]
    access_log: DataLoader[AccessPage, list[AccessEntry]]

    @classmethod
    def for_session(cls, session: Session) -> Loaders:
        async def load_recipients(ids: list[int]) -> list[Recipient | None]:
            return await recipients.by_ids(session, ids)

        async def load_doses(ids: list[int]) -> list[list[Dose]]:
            return await doses.of_recipients(session, ids)

        async def load_access_log(pages: list[AccessPage]) -> list[list[AccessEntry]]:
            return await audit.access_log(session, pages)

        return cls(recipient=DataLoader(load_fn=load_recipients),
                   doses=DataLoader(load_fn=load_doses),
                   access_log=DataLoader(load_fn=load_access_log))


@dataclass
class Context:
    pool: asyncpg.Pool
    settings: Settings
    principal: Principal
    request_id: str
    session: Session = field(init=False)
    audit: AuditTrail = field(init=False)
    loaders: Loaders = field(init=False)
    # The ASGI scope, when served over HTTP: the operation name goes there for the metrics.
    http_scope: dict[str, Any] | None = None
    # Shared by the requests of one process (None: always ask the database).
    coverage_cache: CoverageCache | None = None
    count_cache: CountCache | None = None

    def __post_init__(self) -> None:
        self.session = Session(self.pool, self.principal)
        self.audit = AuditTrail(self.principal, self.request_id)
        self.loaders = Loaders.for_session(self.session)

    @property
    def freeze(self) -> Freeze | None:
        """The freeze covering this principal, as read when the transaction began."""
        state = self.session.known_state
        return state.freeze if state is not None else None
