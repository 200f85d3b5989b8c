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


def doses_follow_recipients(principal: Principal) -> bool:
    """Whether doses_in_scope says no more than "a dose of a recipient recipients_in_scope lets
    through": true for scopes ALL, CENTER (registered or dosed at the center, either way) and
    SELF when the role's doses and recipients scopes are the same. Then a statement that
    reaches doses from a recipient row already in scope leaves the doses condition out (one
    check per recipient, not per dose); RLS still checks every row."""
    scopes = ROW_SCOPES[principal.role]
    return scopes.doses is scopes.recipients and \
        scopes.doses in (RowScope.ALL, RowScope.CENTER, RowScope.SELF)


def center_doses_in_scope(principal: Principal, center_id: int) -> bool:
    """Whether every dose given at `center_id` is in the principal's scope, whoever received
    it: all doses for scope ALL, the center's own doses for its staff (doses_in_scope's first
    arm). A statement filtered to that center then leaves the doses condition out."""
    scope = ROW_SCOPES[principal.role].doses
    return scope is RowScope.ALL or \
        (scope is RowScope.CENTER and principal.center_id is not None
         and center_id == principal.center_id)


def residents_not_frozen(where: Conditions, principal: Principal, alias: str = "r") -> None:
    """Leave out residents of frozen districts: for lookups by a personal value, whose match
    alone would confirm the person (their fields are withheld anyway; policy.resident_frozen)."""
    if principal.role in FREEZE_EXEMPT:
        return
    where.add(f"NOT EXISTS (SELECT 1 FROM privacy_freezes rf WHERE rf.lifted_at IS NULL "
              f"AND rf.until > now() AND rf.district_id = {alias}.district_id)")
