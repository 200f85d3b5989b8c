"""One read operation, for one principal, as one SQL statement and the values and errors that
need no database.

The statement is the whole read: it sets the principal for the transaction (api/db/session.py's
_BEGIN_SQL, `set_config(..., true)`, as the FROM item `pz` that every root depends on), reads
the freezes that bind the principal, builds the response json and the audit row the read must
leave (committed by api/compiled/audit_commit.py before the response goes out); read-only and
committed by itself, it is one round trip. Each root is a LATERAL subquery
that references `pz` and cannot be flattened (OFFSET 0), so it runs only after `pz`'s row, with
the principal set: were it ever evaluated earlier, RLS would see no principal and return nothing
(fail closed, and the differential test would fail).

The root fields mirror api/schema/query.py: the role's grant and any freeze first (FORBIDDEN),
then the arguments in the same order as the domain checks them (BAD_USER_INPUT), then the rows
with the scope builders of api/domain/scope.py. NOT_FOUND is decided from the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLSchema
from graphql.execution.values import VariableValues, get_argument_values

from api.compiled.objects import (
    Aliases,
    Objects,
    Part,
    RecipientRow,
    Site,
    concat,
    cursor,
    json_object,
    lateral_joins,
    typename,
)
from api.compiled.selection import Selected, Uncompilable
from api.db.session import _BEGIN_SQL, principal_args
from api.domain import recipients
from api.domain.conditions import Conditions
from api.domain.doses import DoseFilter, search_conditions
from api.domain.errors import BadUserInput, Forbidden, Refusal
from api.domain.pagination import decode_cursor, page_size
from api.domain.recipients import parse_id
from api.domain.scope import recipients_in_scope
from api.policy import Access, field_access, freeze_blocks, root_allowed
from api.principal import Principal

COMPILED_ROOTS = frozenset({"recipient", "recipients", "doses", "me"})
# The principal and its freezes: _BEGIN_SQL ($1-$4 = principal_args) as a FROM item.
PRINCIPAL = "pz"
_PRINCIPAL_FROM = f"(SELECT * FROM ({_BEGIN_SQL}) b OFFSET 0) {PRINCIPAL}"
# What the statement returns about the freezes, for api/db/session.request_state.
FREEZE_COLUMNS = ("home_district", "freeze_district", "until", "reason", "frozen_districts")
# True in pz's row, and known to the planner only from it (never folded to a constant).
_AFTER_PRINCIPAL = f"{PRINCIPAL}.frozen_districts IS NOT NULL"
# No freeze binds the principal (pz found none for its home district or the nation).
_UNFROZEN = f"{PRINCIPAL}.until IS NULL"

# The audit row this read must leave, as json for api/compiled/audit_commit.py (which commits
# it before the response goes out), or NULL when it revealed nothing personal. `set_role` and
# `set_sub` are what _BEGIN_SQL set ($1, $2): the principal the row is checked against. The ids
# and fields go as gathered (repeats, any order): the batch INSERT sorts them and drops the
# repeats, so the executor start-up of those two sorts is paid once per batch, not once per read
# (the sorting itself is still per row; backend CPU per request,
# INSERT share included: `me` -7%, staff 0 to -9%, admin, center even; stop20-portal/audit_move.py).
_AUDIT_ROW = """CASE WHEN cardinality(q.ids) > 0 THEN json_build_object(
    'set_role', $1::text, 'set_sub', $2::text, 'sub', {sub}::text, 'role', {role}::text,
    'center', {center}::int, 'district', {district}::int, 'operation', {operation}::text,
    'request', {request}::text, 'ids', q.ids, 'fields', q.f)::text
END AS audit"""


@dataclass
class Root:
    """A root key's value: constant JSON, a statement column, or null with an error."""

    key: str
    nodes: tuple[Any, ...] = ()
    constant: bytes | None = None
    column: int | None = None
    # NOT_FOUND's text when the column comes back null (the error is built only then: a
    # GraphQLError computes its locations, a few percent of a request).
    not_found: str | None = None
    # A freeze binding the principal closes this root (policy.freeze_blocks): FORBIDDEN then,
    # and `unless_frozen` (an argument's error) only when none does.
    freeze_sensitive: bool = False
    unless_frozen: GraphQLError | None = None


@dataclass
class Rendered:
    roots: list[Root]
    errors: list[GraphQLError] = field(default_factory=list)
    sql: str | None = None
    args: list[Any] = field(default_factory=list)
    # Fields withheld from residents of frozen districts: markers in the result point here.
    sites: list[Site] = field(default_factory=list)


def refusal(error: Refusal, nodes: Any, path: list[str | int]) -> GraphQLError:
    return GraphQLError(str(error), nodes=list(nodes), path=path, extensions=error.extensions)


def page_literal(size: int) -> str:
    """A page size (1..MAX_FIRST, pagination.page_size checked it) as SQL text, not a parameter:
    with `LIMIT $n + 1` the generic plan cannot know the page is small, costs it as a scan of
    the whole table and PostgreSQL planned the page of 100 anew on every request (~13 ms). One
    prepared statement per page size asked for (at most MAX_FIRST of them)."""
    return f"{int(size)}::bigint"


class Statement:
    """Builds the statement for one request; `render` is the entry point."""

    def __init__(self, schema: GraphQLSchema, principal: Principal, variables: VariableValues,
                 operation: str | None, request_id: str) -> None:
        self.schema = schema
        self.principal = principal
        self.variables = variables
        self.operation = operation
        self.request_id = request_id
        # $1-$4 are the principal, as _BEGIN_SQL numbers them.
        self.params = Conditions(list(principal_args(principal)))
        self.alias = Aliases()
        self.rendered = Rendered(roots=[])
        self.objects = Objects(principal, self.params, self.alias, PRINCIPAL)

    def param(self, value: Any, cast: str) -> str:
        return f"{self.params.param(value)}::{cast}"

    def render(self, roots: tuple[Selected, ...]) -> Rendered:
        out = self.rendered = Rendered(roots=[], sites=self.objects.sites)
        laterals: list[tuple[str, str]] = []
        parts: list[Part] = []
        for selected in roots:
            root = Root(selected.key, selected.nodes)
            out.roots.append(root)
            if selected.name == "__typename":
                root.constant = b'"Query"'
                continue
            if selected.name not in COMPILED_ROOTS:
                raise Uncompilable(f"root {selected.name}")
            try:
                root.freeze_sensitive = self._check_root(selected.name)
                part = self._root(selected, root, out.errors)
            except Refusal as refused:
                error = refusal(refused, selected.nodes, [selected.key])
                if root.freeze_sensitive:
                    root.unless_frozen = error  # a freeze is checked before the arguments
                else:
                    out.errors.append(error)
                root.constant = b"null"
                continue
            if part is None:
                continue
            name = self.alias("t")
            # Runs after pz's row (a lateral reference that OFFSET 0 keeps from being
            # flattened away); a root a freeze closes is not read at all while one binds.
            after = _UNFROZEN if root.freeze_sensitive else _AFTER_PRINCIPAL
            laterals.append((f"SELECT * FROM ({part.json}) s WHERE {after} OFFSET 0", name))
            root.column = len(parts)
            parts.append(Part(f"{name}.j", f"{name}.ids" if part.ids else None,
                              f"{name}.f" if part.fields else None))
        if parts:
            out.sql = self._statement(parts, laterals)
        elif any(r.freeze_sensitive for r in out.roots):
            # Nothing to read, but whether a freeze binds decides the errors.
            out.sql = f"SELECT {', '.join(FREEZE_COLUMNS)} FROM {_PRINCIPAL_FROM}"
        if out.sql is not None:
            out.args = self.params.args
        return out

    def _statement(self, parts: list[Part], laterals: list[tuple[str, str]]) -> str:
        columns = [f"{p.json} AS j{i}" for i, p in enumerate(parts)]
        columns += [f"{PRINCIPAL}.{c}" for c in FREEZE_COLUMNS]
        ids = concat([p.ids for p in parts], "'{}'::bigint[]")
        fields = concat([p.fields for p in parts], "'{}'::text[]")
        if ids is not None:
            columns += [f"{ids} AS ids", f"{fields} AS f"]
        sql = (f"WITH q AS (SELECT {', '.join(columns)} FROM {_PRINCIPAL_FROM} "
               f"{lateral_joins(laterals)})")
        results = [f"j{i}::text" for i in range(len(parts))] + list(FREEZE_COLUMNS)
        if ids is not None:
            # The row is committed after the read (api/compiled/audit_commit.py), before the
            # response: the statement itself stays read-only.
            p = self.principal
            results.append(_AUDIT_ROW.format(
                sub=self.params.param(p.sub), role=self.params.param(p.role.value),
                center=self.params.param(p.center_id), district=self.params.param(p.district_id),
                operation=self.params.param(self.operation),
                request=self.params.param(self.request_id)))
        return sql + " SELECT " + ", ".join(results) + " FROM q"

    def _check_root(self, name: str) -> bool:
        """Forbidden unless the role may call `name`; whether a freeze would close it."""
        role = self.principal.role
        if not root_allowed(name, role):
            raise Forbidden(f"role {role.value} may not use {name}")
        return freeze_blocks(name, role)

    def _arguments(self, selected: Selected) -> dict[str, Any]:
        assert self.schema.query_type is not None
        definition = self.schema.query_type.fields[selected.name]
        return get_argument_values(definition, selected.node, self.variables)

    def _root(self, selected: Selected, root: Root, errors: list[GraphQLError]) -> Part | None:
        args = self._arguments(selected)
        if selected.name == "recipient":
            recipient_id = parse_id(str(args["id"]))
            root.not_found = f"no recipient {recipient_id} in your scope"
            return self._one_recipient(selected.children, recipient_id)
        if selected.name == "recipients":
            return self._recipients(selected, args)
        if selected.name == "doses":
            return self._doses(selected, args)
        return self._me(selected, root, errors)

    def _one_recipient(self, children: tuple[Selected, ...], recipient_id: int) -> Part:
        row = RecipientRow(self.alias("r"), self.alias("dt"))
        part = self.objects.recipient(children, row)
        where = [f"{row.r}.id = {self.param(recipient_id, 'bigint')}",
                 *self.objects.scoped(recipients_in_scope, row.r)]
        sql = (f"SELECT {part.json} AS j, {part.ids or 'NULL::bigint[]'} AS ids, "
               f"{part.fields or 'NULL::text[]'} AS f FROM recipients {row.r} "
               f"JOIN districts {row.dt} ON {row.dt}.id = {row.r}.district_id "
               f"{lateral_joins(part.laterals)} WHERE {' AND '.join(where)}")
        return Part(sql, part.ids, part.fields)

    def _recipients(self, selected: Selected, args: dict[str, Any]) -> Part:
        if args.get("filter") is not None:
            raise Uncompilable("recipients(filter:)")  # lookups by nationalId/phone: strawberry
        size = page_size(args.get("first"))
        after = args.get("after")
        key = decode_cursor(recipients.CURSOR_KIND, after, 1)
        where = Conditions(self.params.args)
        recipients_in_scope(where, self.principal, "r")
        if key is not None:
            if not isinstance(key[0], int):
                raise BadUserInput(f"after: {after!r} is not a recipient cursor")
            where.add("r.id > {p}", key[0])
        self.params.args = where.args
        size_p = page_literal(size)
        row = RecipientRow(self.alias("r"), self.alias("dt"))
        base = (f"(SELECT r.* FROM recipients r {where.where()} ORDER BY r.id "
                f"LIMIT {size_p} + 1) AS {row.r} "
                f"JOIN districts {row.dt} ON {row.dt}.id = {row.r}.district_id")
        return self._connection(selected, "Recipient", base, f"{row.r}.id",
                                cursor(f"'[\"recipient\",' || {row.r}.id || ']'"), size_p,
                                lambda children: self.objects.recipient(children, row))

    def _doses(self, selected: Selected, args: dict[str, Any]) -> Part:
        given = args.get("filter") or {}

        def id_of(name: str) -> int | None:
            value = given.get(name)
            return None if value is None else parse_id(str(value), name)

        filters = DoseFilter(center_id=id_of("centerId"), recipient_id=id_of("recipientId"),
                             administered_from=given.get("administeredFrom"),
                             administered_to=given.get("administeredTo"),
                             dose_number=given.get("doseNumber"), vaccine=given.get("vaccine"))
        size = page_size(args.get("first"))
        where = search_conditions(Conditions(self.params.args), self.principal, filters,
                                  args.get("after"))
        self.params.args = where.args
        size_p = page_literal(size)
        row = self.objects.dose_row()
        # The recipients join (RLS) filters before the LIMIT, as strawberry's query does; its
        # row comes along for Dose.recipient instead of a second join (and RLS check) per row.
        base = (f"(SELECT d.*, rb AS checked_recipient FROM doses d JOIN recipients rb "
                f"ON rb.id = d.recipient_id {where.where()} "
                f"ORDER BY d.administered_on DESC NULLS FIRST, d.id DESC "
                f"LIMIT {size_p} + 1) AS {row.d} "
                f"{self.objects.dose_joins(row, self._nodes(selected), checked='checked_recipient')}")
        day = f"coalesce('\"' || to_char({row.d}.administered_on, 'YYYY-MM-DD') || '\"', 'null')"
        return self._connection(
            selected, "Dose", base, f"{row.d}.administered_on DESC NULLS FIRST, {row.d}.id DESC",
            cursor(f"'[\"dose\",' || {day} || ',' || {row.d}.id || ']'"), size_p,
            lambda children: self.objects.dose(children, row))

    @staticmethod
    def _nodes(selected: Selected) -> tuple[Selected, ...]:
        """The fields asked of a connection's nodes (edges { node { ... } }), merged."""
        return tuple(n for e in selected.children if e.name == "edges"
                     for x in e.children if x.name == "node" for n in x.children)

    def _connection(self, selected: Selected, kind: str, base: str, order: str, cursor_sql: str,
                    size: str, node: Any) -> Part:
        """A Relay connection over `base` (size + 1 rows): the extra row only sets hasNextPage,
        and is neither shown nor audited."""
        pairs: list[tuple[str, str]] = []
        nodes: list[str] = []
        node_parts: list[Part] = []
        for s in selected.children:
            if s.name == "__typename":
                pairs.append((s.key, typename(f"{kind}Connection")))
            elif s.name == "edges":
                edge: list[tuple[str, str]] = []
                for e in s.children:
                    if e.name == "cursor":
                        edge.append((e.key, "p.cur"))
                    elif e.name == "node":
                        part = node(e.children)
                        nodes.append(f"{part.json} AS n{len(nodes)}")
                        node_parts.append(part)
                        edge.append((e.key, f"p.n{len(nodes) - 1}"))
                    else:
                        edge.append((e.key, typename(f"{kind}Edge")))
                pairs.append((s.key, f"coalesce(json_agg({json_object(edge)} ORDER BY p.rn) "
                                     f"FILTER (WHERE p.rn <= {size}), '[]'::json)"))
            else:
                info = {"hasNextPage": f"coalesce(max(p.n), 0) > {size}",
                        "endCursor": f"max(p.cur) FILTER (WHERE p.rn = least(p.n, {size}))",
                        "__typename": typename("PageInfo")}
                pairs.append((s.key, json_object([(i.key, info[i.name]) for i in s.children])))
        ids = concat([p.ids for p in node_parts], "'{}'::bigint[]")
        fields = concat([p.fields for p in node_parts], "'{}'::text[]")
        asked = {(s.name, c.name) for s in selected.children for c in s.children}
        # Cursors and the row count only when something reads them (edges.cursor, pageInfo).
        wants_cursor = bool(asked & {("edges", "cursor"), ("pageInfo", "endCursor")})
        wants_count = bool(asked & {("pageInfo", "hasNextPage"), ("pageInfo", "endCursor")})
        columns = [f"row_number() OVER (ORDER BY {order}) AS rn",
                   "count(*) OVER () AS n" if wants_count else "NULL::bigint AS n",
                   f"{cursor_sql} AS cur" if wants_cursor else "NULL::text AS cur", *nodes]
        if ids is not None:
            columns += [f"{ids} AS ids", f"{fields} AS f"]
        laterals = [lat for p in node_parts for lat in p.laterals]
        audit = (f"array_cat_agg(p.ids) FILTER (WHERE p.rn <= {size}) AS ids, "
                 f"array_cat_agg(p.f) FILTER (WHERE p.rn <= {size}) AS f") if ids else \
            "NULL::bigint[] AS ids, NULL::text[] AS f"
        sql = (f"SELECT {json_object(pairs)} AS j, {audit} FROM (SELECT {', '.join(columns)} "
               f"FROM {base} {lateral_joins(laterals)}) p GROUP BY ()")
        return Part(sql, ids, fields)

    def _me(self, selected: Selected, root: Root, errors: list[GraphQLError]) -> Part | None:
        p = self.principal
        constants = {"role": p.role.value, "sub": p.sub,
                     "centerId": None if p.center_id is None else str(p.center_id),
                     "districtId": None if p.district_id is None else str(p.district_id),
                     "__typename": "Me"}
        wanted = [s for s in selected.children if s.name == "recipient"]
        for s in selected.children:
            if s.name not in constants and s.name != "recipient":
                raise Uncompilable(f"Me.{s.name}")
        # `me` stays open in a freeze, and Me.recipient is the recipient's own (freeze-exempt).
        access = field_access("Me", "recipient", p.role)
        if not wanted or access is Access.DENY:
            for s in wanted:
                errors.append(refusal(Forbidden(f"role {p.role.value} may not see Me.recipient"),
                                      s.nodes, [selected.key, s.key]))
            root.constant = json.dumps({s.key: None if s.name == "recipient" else
                                        constants[s.name] for s in selected.children},
                                       separators=(",", ":")).encode()
            return None
        if p.recipient_id is None:
            raise Uncompilable("recipient token without a numeric sub")
        pairs: list[tuple[str, str]] = []
        parts: list[Part] = []
        for s in selected.children:
            if s.name == "recipient":
                one = self._one_recipient(s.children, p.recipient_id)
                name = self.alias("m")
                parts.append(Part(one.json, f"{name}.ids" if one.ids else None,
                                  f"{name}.f" if one.fields else None, [(one.json, name)]))
                pairs.append((s.key, f"{name}.j"))
            else:
                pairs.append((s.key, self.param(constants[s.name], "text")))
        ids = concat([x.ids for x in parts], "'{}'::bigint[]")
        fields = concat([x.fields for x in parts], "'{}'::text[]")
        laterals = [lat for x in parts for lat in x.laterals]
        sql = (f"SELECT {json_object(pairs)} AS j, {ids or 'NULL::bigint[]'} AS ids, "
               f"{fields or 'NULL::text[]'} AS f FROM (SELECT 1) z {lateral_joins(laterals)}")
        return Part(sql, ids, fields)
