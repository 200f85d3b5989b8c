"""SQL expressions that build one response object (Recipient, Dose, ...) as json from row aliases.

Each object comes back as a `Part`: the json expression, the LATERAL joins its nested lists need,
and two array expressions naming what it revealed (recipient ids, personal fields) for the audit.
Field access is decided by the policy table (`field_access`), masking included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode

from api.compiled.selection import Selected, Uncompilable
from api.domain.conditions import Conditions
from api.domain.scope import doses_follow_recipients, doses_in_scope
from api.policy import PERSONAL_FIELDS, Access, field_access, withholds_residents
from api.principal import Principal

# The key of the object a withheld field carries in the statement's json instead of its value
# (`{"!withheld": district, "!site": n}`); no response key can start with "!", and in a json
# string value the quote before it would be escaped, so the text test in `withheld` is exact.
WITHHELD_KEY = "!withheld"
WITHHELD_MARK = b'{"' + WITHHELD_KEY.encode() + b'"'

# json_build_object takes at most 100 arguments: 50 keys.
MAX_KEYS = 50


def iso_date(column: str) -> str:
    return f"to_char({column}, 'YYYY-MM-DD')"


def iso_datetime(column: str) -> str:
    """Python's datetime.isoformat() of a timestamptz in UTC (what strawberry sends)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({utc}, 'US') = "
            f"'000000' THEN '' ELSE '.' || to_char({utc}, 'US') END || '+00:00')")


def masked(column: str) -> str:
    """policy.mask_national_id in SQL: all but the last four characters replaced by `*`."""
    return f"(repeat('*', greatest(length({column}) - 4, 0)) || right({column}, 4))"


def cursor(parts: str) -> str:
    """pagination.encode_cursor in SQL: unpadded urlsafe base64 of the compact JSON key."""
    return (f"rtrim(translate(encode(convert_to({parts}, 'UTF8'), 'base64'), E'+/\\n', '-_'), "
            "'=')")


def typename(name: str) -> str:
    return f"'{name}'::text"


def json_object(pairs: list[tuple[str, str]]) -> str:
    if len(pairs) > MAX_KEYS:
        raise Uncompilable("too many keys in one object")
    return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"


def concat(parts: list[str | None], empty: str) -> str | None:
    present = [p for p in parts if p is not None]
    return f"coalesce({' || '.join(present)}, {empty})" if present else None


@dataclass
class Part:
    json: str
    ids: str | None = None          # bigint[] of recipients whose personal data this revealed
    fields: str | None = None       # text[] of the personal fields revealed
    # LATERAL subqueries (sql, alias) its nested lists need in the FROM that holds its row.
    laterals: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Site:
    """Where a field may be withheld from a resident of a frozen district: the error's text
    and the nodes it points at; the path comes from where the marker sits in the result."""

    type_name: str
    field: str
    nodes: tuple[FieldNode, ...]


@dataclass(frozen=True)
class RecipientRow:
    r: str
    dt: str


@dataclass(frozen=True)
class DoseRow:
    d: str
    v: str
    c: str
    r: str
    dt: str

    @property
    def recipient(self) -> RecipientRow:
        return RecipientRow(self.r, self.dt)


_PERSONAL_COLUMNS = {"nationalId": "national_id", "fullName": "full_name", "phone": "phone",
                     "birthDate": "birth_date"}


class Aliases:
    """Fresh table aliases for one statement: the prefix and a number counted across it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"


@dataclass(frozen=True)
class _Built:
    """An object part as built once, to be handed out again (Objects._reuse)."""

    children: tuple[Selected, ...]   # held, so its id() in the key is not reused meanwhile
    part: Part
    aliases: int                      # aliases the build took
    sites: tuple[Site, ...]           # sites it added


# Object parts by what alone decides their text; bounded, emptied when full. ~60% of rendering
# a one-recipient read (bench/lab/stop20-portal/render_cost.py).
_BUILT: dict[tuple[object, ...], _Built] = {}
_MAX_BUILT = 2048


def _copy(part: Part) -> Part:
    return Part(part.json, part.ids, part.fields, list(part.laterals))


class Objects:
    """Builds object parts for one statement; `params` numbers every value it adds."""

    def __init__(self, principal: Principal, params: Conditions, alias: Aliases,
                 principal_row: str) -> None:
        self.principal = principal
        self.params = params
        self.alias = alias
        # The statement's principal row (statement.PRINCIPAL): its `frozen_districts` are the
        # districts frozen now, read in the same statement.
        self.principal_row = principal_row
        # Fields a district freeze may withhold from this principal, markers point here.
        self.sites: list[Site] = []

    def scoped(self, build: Callable[[Conditions, Principal, str], None], alias: str) -> list[str]:
        """The clauses a scope builder of api/domain/scope.py adds for `alias`, numbered on."""
        where = Conditions(self.params.args)
        build(where, self.principal, alias)
        self.params.args = where.args
        return where.clauses

    def _access(self, type_name: str, name: str) -> Access:
        # A freeze binding the principal closes every root that reaches objects (statement.py),
        # so only the role's grant decides here.
        access = field_access(type_name, name, self.principal.role)
        if access is Access.DENY:
            raise Uncompilable(f"{type_name}.{name} denied inside an object")
        return access

    def _resident_frozen(self, r: str, type_name: str, name: str) -> str | None:
        """SQL that is true when the field is withheld because the row's residence is frozen,
        or None when no district freeze can withhold it from this principal (the policy's
        withholds_residents and field_access(frozen=True) decide)."""
        role = self.principal.role
        if not withholds_residents(role) or \
                field_access(type_name, name, role, frozen=True) is not Access.DENY:
            return None
        # Most of the time no district is frozen: the empty-string test settles every row
        # without splitting the list (AND is evaluated left to right).
        frozen = f"{self.principal_row}.frozen_districts"
        return (f"({frozen} <> '' AND {r}.district_id::text = ANY(string_to_array("
                f"{frozen}, ',')))")

    def district(self, selected: Selected, dt: str) -> str:
        columns = {"id": f"{dt}.id::text", "name": f"{dt}.name", "division": f"{dt}.division",
                   "__typename": typename("District")}
        return json_object([(s.key, columns[s.name]) for s in selected.children])

    def center(self, selected: Selected, c: str) -> str:
        columns = {"id": f"{c}.id::text", "name": f"{c}.name",
                   "districtId": f"{c}.district_id::text", "__typename": typename("Center")}
        return json_object([(s.key, columns[s.name]) for s in selected.children])

    def vaccine(self, selected: Selected, v: str) -> str:
        columns = {"code": f"{v}.code", "name": f"{v}.name",
                   "dosesRequired": f"{v}.doses_required",
                   "doseIntervalDays": f"{v}.dose_interval_days",
                   "__typename": typename("Vaccine")}
        return json_object([(s.key, columns[s.name]) for s in selected.children])

    def _reuse(self, build: Callable[[tuple[Selected, ...], Any], Part],
               children: tuple[Selected, ...], row: RecipientRow | DoseRow) -> Part:
        """build(children, row), or the part an earlier statement built from the same inputs.

        A part's text depends only on the fields asked (`children`, part of a cached plan), the
        row's aliases, the role (field access, freezes, scope shortcuts: nothing else of the
        principal), the aliases, sites and parameters numbered before it. A build that added
        parameters (a doses scope condition carries the principal's values) is not kept."""
        key = (build.__name__, id(children), row, self.principal.role, self.alias.count,
               len(self.sites), len(self.params.args))
        built = _BUILT.get(key)
        if built is not None and built.children is children:
            self.alias.count += built.aliases
            self.sites.extend(built.sites)
            return _copy(built.part)
        aliases, sites, args = self.alias.count, len(self.sites), len(self.params.args)
        part = build(children, row)
        if len(self.params.args) == args:
            if len(_BUILT) >= _MAX_BUILT:
                _BUILT.clear()
            _BUILT[key] = _Built(children, _copy(part), self.alias.count - aliases,
                                 tuple(self.sites[sites:]))
        return part

    def recipient(self, children: tuple[Selected, ...], row: RecipientRow) -> Part:
        return self._reuse(self._recipient, children, row)

    def dose(self, children: tuple[Selected, ...], row: DoseRow) -> Part:
        return self._reuse(self._dose, children, row)

    def _recipient(self, children: tuple[Selected, ...], row: RecipientRow) -> Part:
        r = row.r
        plain = {"id": f"{r}.id::text", "sex": f"{r}.sex",
                 "registeredAt": iso_datetime(f"{r}.registered_at"),
                 "fullName": f"{r}.full_name", "phone": f"{r}.phone",
                 "nationalId": f"{r}.national_id", "birthDate": iso_date(f"{r}.birth_date")}
        pairs: list[tuple[str, str]] = []
        laterals: list[tuple[str, str]] = []
        ids: list[str | None] = []
        fields: list[str | None] = []
        revealed: dict[str, str] = {}
        for s in children:
            if s.name == "__typename":
                pairs.append((s.key, typename("Recipient")))
                continue
            access = self._access("Recipient", s.name)
            if s.name == "district":
                pairs.append((s.key, self.district(s, row.dt)))
            elif s.name == "doses":
                part = self.doses_of(s.children, row)
                laterals += part.laterals
                pairs.append((s.key, part.json))
                ids.append(part.ids)
                fields.append(part.fields)
            elif s.name in plain:
                expr = plain[s.name]
                if access is Access.MASK:
                    if s.name != "nationalId":
                        raise Uncompilable(f"Recipient.{s.name} has no masked form")
                    expr = masked(expr)
                frozen = self._resident_frozen(r, "Recipient", s.name)
                if frozen is not None:
                    # A marker in place of the value; the compiler turns it into null and
                    # FORBIDDEN at this path. Withheld means not revealed: not audited.
                    self.sites.append(Site("Recipient", s.name, s.nodes))
                    expr = (f"CASE WHEN {frozen} THEN json_build_object('{WITHHELD_KEY}', "
                            f"{r}.district_id, '!site', {len(self.sites) - 1}) "
                            f"ELSE to_json({expr}) END")
                pairs.append((s.key, expr))
                if s.name in PERSONAL_FIELDS:
                    column = f"{r}.{_PERSONAL_COLUMNS[s.name]}"
                    revealed[s.name] = column if frozen is None else \
                        f"(CASE WHEN {frozen} THEN NULL ELSE {column} END)"
            else:
                raise Uncompilable(f"Recipient.{s.name}")
        if revealed:
            any_value = " OR ".join(f"{c} IS NOT NULL" for c in revealed.values())
            ids.insert(0, f"CASE WHEN {any_value} THEN ARRAY[{r}.id] ELSE '{{}}'::bigint[] END")
            names = ", ".join(f"CASE WHEN {c} IS NOT NULL THEN '{n}' END"
                              for n, c in sorted(revealed.items()))
            fields.insert(0, f"array_remove(ARRAY[{names}]::text[], NULL)")
        return Part(json_object(pairs), concat(ids, "'{}'::bigint[]"),
                    concat(fields, "'{}'::text[]"), laterals)

    def _dose(self, children: tuple[Selected, ...], row: DoseRow) -> Part:
        d = row.d
        plain = {"id": f"{d}.id::text", "doseNumber": f"{d}.dose_number",
                 "lotNumber": f"{d}.lot_number",
                 "administeredOn": iso_date(f"{d}.administered_on"),
                 "nextDueOn": iso_date(f"{d}.next_due_on")}
        pairs: list[tuple[str, str]] = []
        part = Part("")
        ids: list[str | None] = []
        fields: list[str | None] = []
        for s in children:
            if s.name == "__typename":
                pairs.append((s.key, typename("Dose")))
                continue
            self._access("Dose", s.name)
            if s.name in plain:
                pairs.append((s.key, plain[s.name]))
            elif s.name == "vaccine":
                pairs.append((s.key, self.vaccine(s, row.v)))
            elif s.name == "center":
                pairs.append((s.key, self.center(s, row.c)))
            elif s.name == "recipient":
                inner = self.recipient(s.children, row.recipient)
                pairs.append((s.key, inner.json))
                part.laterals += inner.laterals
                ids.append(inner.ids)
                fields.append(inner.fields)
            else:
                raise Uncompilable(f"Dose.{s.name}")
        part.json = json_object(pairs)
        part.ids = concat(ids, "'{}'::bigint[]")
        part.fields = concat(fields, "'{}'::text[]")
        return part

    def dose_row(self, parent: RecipientRow | None = None) -> DoseRow:
        """Fresh aliases for a dose row; its recipient's are `parent`'s when it has one."""
        d, v, c = self.alias("d"), self.alias("v"), self.alias("c")
        if parent is not None:
            return DoseRow(d, v, c, parent.r, parent.dt)
        return DoseRow(d, v, c, self.alias("r"), self.alias("dt"))

    def dose_joins(self, row: DoseRow, children: tuple[Selected, ...],
                   parent: RecipientRow | None = None, checked: str | None = None) -> str:
        """The joins of records.DOSE_FROM under fresh aliases, less those that can neither drop
        a row nor are read: vaccines, centers and districts have no RLS and every dose's
        foreign keys are NOT NULL, and a recipient whose dose is reached from its visible
        parent row (`parent`) is that row. A dose list reached otherwise keeps its recipients
        join, so RLS filters `r` as it does there, unless a recipients join already filtered
        its rows and carries the recipient along as the composite column `checked`."""
        wanted = {s.name for s in children}
        joins = []
        if "vaccine" in wanted:
            joins.append(f"JOIN vaccines {row.v} ON {row.v}.code = {row.d}.vaccine_code")
        if "center" in wanted:
            joins.append(f"JOIN centers {row.c} ON {row.c}.id = {row.d}.center_id")
        if parent is None and checked is None:
            joins.append(f"JOIN recipients {row.r} ON {row.r}.id = {row.d}.recipient_id")
        elif parent is None and "recipient" in wanted:
            joins.append(f"CROSS JOIN LATERAL (SELECT ({row.d}.{checked}).*) AS {row.r}")
        # The recipient's district only when it is read: the foreign key is NOT NULL and
        # districts has no RLS, so the join can drop no row.
        if parent is None and any(s.name == "recipient" and
                                  any(c.name == "district" for c in s.children)
                                  for s in children):
            joins.append(f"JOIN districts {row.dt} ON {row.dt}.id = {row.r}.district_id")
        return " ".join(joins)

    def doses_of(self, children: tuple[Selected, ...], recipient: RecipientRow) -> Part:
        """Recipient.doses: the recipient's in-scope doses by dose number (doses.of_recipients).

        Every recipient row an object is built from is in scope (the statement's roots check
        it, or it is the recipient of an in-scope dose), so for most roles its doses are too
        (scope.doses_follow_recipients) and need no condition of their own."""
        row = self.dose_row(recipient)
        inner = self.dose(children, row)
        where = [f"{row.d}.recipient_id = {recipient.r}.id"]
        if not doses_follow_recipients(self.principal):
            where += self.scoped(doses_in_scope, row.d)
        lateral = self.alias("l")
        ids = inner.ids or "NULL::bigint[]"
        fields = inner.fields or "NULL::text[]"
        sql = (f"SELECT coalesce(json_agg(x.j ORDER BY x.o), '[]'::json) AS j, "
               f"array_cat_agg(x.ids) AS ids, array_cat_agg(x.f) AS f FROM ("
               f"SELECT {inner.json} AS j, {ids} AS ids, {fields} AS f, {row.d}.dose_number AS o "
               f"FROM doses {row.d} {self.dose_joins(row, children, recipient)} "
               f"{lateral_joins(inner.laterals)} "
               f"WHERE {' AND '.join(where)}) x")
        return Part(f"{lateral}.j", f"{lateral}.ids" if inner.ids else None,
                    f"{lateral}.f" if inner.fields else None, [(sql, lateral)])


def lateral_joins(laterals: list[tuple[str, str]]) -> str:
    return " ".join(f"LEFT JOIN LATERAL ({sql}) AS {name} ON true" for sql, name in laterals)
