"""The policy table applied in the schema: root guards, field reveal/mask/deny, SDL directives."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import strawberry
from strawberry.schema_directive import Location

from api.domain.errors import Forbidden
from api.policy import (
    FIELDS,
    PERSONAL_FIELDS,
    ROOTS,
    Access,
    describe_field,
    describe_root,
    field_access,
    freeze_blocks,
    resident_frozen,
    resident_withheld,
    root_allowed,
)
from api.principal import Role
from api.schema.context import Context

T = TypeVar("T")
Info = strawberry.Info[Context, None]


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION], name="policy",
    description="Who may see this field (generated from api/policy.py): roles given it in full "
                "and roles given it masked. Everyone else gets null with code FORBIDDEN.")
class Policy:
    full: list[str]
    masked: list[str]


def _field_directive(type_name: str, field: str) -> Policy:
    grants = FIELDS.get((type_name, field), {})
    return Policy(full=[r.value for r in Role if grants.get(r) is Access.ALLOW],
                  masked=[r.value for r in Role if grants.get(r) is Access.MASK])


def _root_directive(root: str) -> Policy:
    roles = ROOTS.get(root, frozenset())
    return Policy(full=[r.value for r in Role if r in roles], masked=[])


def policy_field(type_name: str, field: str, **options: Any) -> Any:
    """strawberry.field for a policy-controlled field, its rule shown in the SDL."""
    return strawberry.field(description=describe_field(type_name, field),
                            directives=[_field_directive(type_name, field)], **options)


def root_field(root: str, description: str, *, mutation: bool = False, **options: Any) -> Any:
    """strawberry.field/mutation for a root field, with its roles in the SDL."""
    make = strawberry.mutation if mutation else strawberry.field
    return make(description=f"{description} {describe_root(root)}",
                directives=[_root_directive(root)], **options)


async def check_root(info: Info, root: str) -> None:
    """Raise Forbidden unless the role may call `root` now (role grant, then any freeze)."""
    ctx = info.context
    role = ctx.principal.role
    if not root_allowed(root, role):
        raise Forbidden(f"role {role.value} may not use {root}")
    if freeze_blocks(root, role):
        state = await ctx.session.state()
        if state.freeze is not None:
            raise Forbidden(state.freeze.describe())


def reveal(info: Info, type_name: str, field: str, value: T, recipient_id: int | None = None,
           mask: Callable[[T], T] | None = None, residence: int | None = None) -> T:
    """`value` if the policy allows it (masked if it says so); Forbidden otherwise.

    A personal field revealed about `recipient_id` is noted for this request's audit entry;
    one about a resident of a frozen district (`residence`) is withheld.
    """
    ctx = info.context
    freeze = ctx.freeze
    state = ctx.session.known_state
    resident = state is not None and resident_frozen(ctx.principal.role, residence,
                                                     state.frozen_districts)
    access = field_access(type_name, field, ctx.principal.role,
                          frozen=freeze is not None or resident)
    if access is Access.DENY:
        if freeze is not None and field in PERSONAL_FIELDS:
            raise Forbidden(f"{type_name}.{field} is withheld: {freeze.describe()}")
        if resident and field in PERSONAL_FIELDS:
            raise Forbidden(resident_withheld(type_name, field, residence))
        raise Forbidden(f"role {ctx.principal.role.value} may not see {type_name}.{field}")
    if recipient_id is not None and field in PERSONAL_FIELDS and value is not None:
        ctx.audit.note_read(recipient_id, field)
    if access is Access.MASK and value is not None:
        if mask is None:
            raise Forbidden(f"{type_name}.{field} has no masked form")
        return mask(value)
    return value


@cache
def _python_name(field: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


@cache
def _denied(role: Role, type_name: str) -> frozenset[str]:
    return frozenset(field for (t, field) in FIELDS
                     if t == type_name and field_access(t, field, role) is Access.DENY)


def plain_fields(role: Role, type_name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments for non-personal fields (GraphQL name -> value), decided once
    per object instead of by a resolver per field: a denied field holds a Forbidden, which
    GraphQL reports at that field's path. Personal fields keep resolvers (for the audit)."""
    denied = _denied(role, type_name)
    return {_python_name(field): Forbidden(f"role {role.value} may not see {type_name}.{field}")
            if field in denied else value for field, value in values.items()}
