"""Row scope from the policy table, as SQL conditions added to every query (RLS checks again)."""

from __future__ import annotations

from api.domain.conditions import Conditions
from api.policy import FREEZE_EXEMPT, ROW_SCOPES, RowScope
from api.principal import Principal


def recipients_in_scope(where: Conditions, principal: Principal, alias: str = "r") -> None:
    """Limit `alias` (a recipients row) to what the principal may see."""
    scope = ROW_SCOPES[principal.role].recipients
    if scope is RowScope.ALL:
        return
    if scope is RowScope.CENTER:
        where.add(f"({alias}.center_id = {{p}} OR EXISTS (SELECT 1 FROM doses sd "
                  f"WHERE sd.recipient_id = {alias}.id AND sd.center_id = {{p}}))",
                  principal.center_id)
    elif scope is RowScope.SELF:
        where.add(f"{alias}.id = {{p}}", principal.recipient_id)
    else:
        where.add("false")


def doses_in_scope(where: Conditions, principal: Principal, alias: str = "d") -> None:
    """Limit `alias` (a doses row) to doses of recipients the principal may see."""
    scope = ROW_SCOPES[principal.role].doses
    if scope is RowScope.ALL:
        return
    if scope is RowScope.CENTER:
        where.add(f"({alias}.center_id = {{p}} OR EXISTS (SELECT 1 FROM recipients sr "
                  f"WHERE sr.id = {alias}.recipient_id AND sr.center_id = {{p}}) "
                  f"OR EXISTS (SELECT 1 FROM doses sd WHERE sd.recipient_id = {alias}.recipient_id "
                  f"AND sd.center_id = {{p}}))", principal.center_id)
    elif scope is RowScope.SELF:
        where.add(f"{alias}.recipient_id = {{p}}", principal.recipient_id)
    else:
        where.add("false")


def residents_not_frozen(where: Conditions, principal: Principal, alias: str = "r") -> None:
    """Leave out residents of frozen districts: for lookups by a personal value, whose match
    alone would confirm the person (their fields are withheld anyway; policy.resident_frozen)."""
    if principal.role in FREEZE_EXEMPT:
        return
    where.add(f"NOT EXISTS (SELECT 1 FROM privacy_freezes rf WHERE rf.lifted_at IS NULL "
              f"AND rf.until > now() AND rf.district_id = {alias}.district_id)")
