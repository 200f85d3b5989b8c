"""Documents parsed and validated once, plans cached, and one request answered end to end.

A plan is the operation's field tree with fragments, aliases and @include/@skip resolved; it is
cached per (document, operation name, values of the variables @include/@skip read). The role,
the freeze and the arguments enter when the statement is rendered for a request.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import VariableValues, get_variable_values
from strawberry.schema.base import BaseSchema

from api.compiled.audit_commit import AuditCommits
from api.compiled.connection import Reader
from api.compiled.objects import WITHHELD_KEY, WITHHELD_MARK, Site
from api.compiled.selection import (
    Selected,
    Uncompilable,
    collect,
    directive_variables,
    operation_of,
)
from api.compiled.statement import COMPILED_ROOTS, Rendered, Statement, refusal
from api.db.session import request_state
from api.domain.errors import Forbidden, NotFound
from api.errors import SettingsError
from api.policy import Freeze, resident_withheld
from api.principal import Principal
from api.schema import MAX_TOKENS, _limit_rules
from api.schema.lifecycle import _NAME

K = TypeVar("K")
V = TypeVar("V")
CACHE_SIZE = 512


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


@dataclass(frozen=True)
class Document:
    """A parsed, valid document, or the reason strawberry must answer it (`refused`)."""

    node: DocumentNode | None
    fragments: dict[str, FragmentDefinitionNode]
    directive_variables: tuple[str, ...]
    refused: str | None = None


@dataclass(frozen=True)
class Prepared:
    """What startup made of the trusted documents (hash -> outcome)."""

    compiled: tuple[str, ...]          # every operation planned for the compiled path
    strawberry: dict[str, str]         # hash -> why strawberry answers (part of) it


@dataclass(frozen=True)
class Plan:
    operation: Any
    label: str | None
    roots: tuple[Selected, ...] | None   # None: not compiled, strawberry answers


@dataclass(frozen=True)
class Answer:
    body: bytes
    operation: str


class Compiler:
    def __init__(self, schema: BaseSchema, production: bool) -> None:
        # The graphql-core schema strawberry built: the same types, rules and names.
        self.schema: GraphQLSchema = schema._schema  # type: ignore[attr-defined]
        self.rules = (*specified_rules, *_limit_rules(production))
        self.documents: _Lru[str, Document] = _Lru(CACHE_SIZE)
        self.plans: _Lru[tuple[Any, ...], Plan] = _Lru(CACHE_SIZE)
        # Trusted documents and their plans, made at startup and never evicted.
        self.pinned_documents: dict[str, Document] = {}
        self.pinned_plans: dict[tuple[Any, ...], Plan] = {}
        # Per pool, the audit rows waiting for their commit (api/compiled/audit_commit.py).
        self.commits: dict[asyncpg.Pool, AuditCommits] = {}

    def prepare(self, documents: Mapping[str, str]) -> Prepared:
        """Parse, validate and plan each trusted document once, at startup, and keep them.

        A document that does not validate against this schema raises SettingsError: a portal
        built against another schema version would fail for its users on every request, so
        the server does not start with it. One the compiler does not cover (a mutation, say)
        is reported in the result; strawberry answers it.
        """
        compiled: list[str] = []
        strawberry: dict[str, str] = {}
        for key, text in documents.items():
            document = self._parse(text)
            if document.node is None:
                raise SettingsError(f"trusted document {key} is not valid against this "
                                    f"server's schema: {document.refused}; rebuild the portal's "
                                    "manifest against this version")
            self.pinned_documents[text] = document
            operations = [d for d in document.node.definitions
                          if isinstance(d, OperationDefinitionNode)]
            names = [o.name.value if o.name else None for o in operations]
            if len(operations) == 1 and names[0] is not None:
                names.append(None)  # a client may send the only operation without its name
            for name in names:
                why = self._pin(text, document, name)
                if why is None:
                    compiled.append(f"{key}:{name or ''}")
                else:
                    strawberry[key] = why
        return Prepared(tuple(compiled), strawberry)

    def _pin(self, text: str, document: Document, name: str | None) -> str | None:
        """Plan operation `name` of a trusted document; why strawberry answers it, if it does."""
        assert document.node is not None
        operation = operation_of(list(document.node.definitions), name)
        if operation.operation is not OperationType.QUERY:
            return f"a {operation.operation.value}"
        if document.directive_variables:
            return None  # planned on first use, per value of its @include/@skip variables
        plan = self._plan(text, name, operation, document, {})
        self.pinned_plans[(text, name, ())] = plan
        if plan.roots is None:
            return "uses what the compiler does not cover"
        uncovered = [r.name for r in plan.roots
                     if r.name != "__typename" and r.name not in COMPILED_ROOTS]
        return f"root {', '.join(uncovered)}" if uncovered else None

    def document(self, query: str) -> Document:
        known = self.pinned_documents.get(query) or self.documents.get(query)
        if known is not None:
            return known
        return self.documents.put(query, self._parse(query))

    def _parse(self, query: str) -> Document:
        try:
            node = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as exc:
            return Document(None, {}, (), f"syntax: {exc.message}")
        errors = validate(self.schema, node, self.rules)
        if errors:
            return Document(None, {}, (), f"invalid: {errors[0].message}")
        fragments = {d.name.value: d for d in node.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        return Document(node, fragments, directive_variables(list(node.definitions)))

    def _plan(self, query: str, operation_name: str | None, operation: Any,
              document: Document, coerced: dict[str, Any]) -> Plan:
        try:
            roots: tuple[Selected, ...] | None = collect(
                operation.selection_set, document.fragments, coerced)
        except Uncompilable:
            roots = None
        name = operation.name.value if operation.name else None
        return Plan(operation, name if name and _NAME.match(name) else None, roots)

    def plan(self, query: str, operation_name: str | None,
             raw_variables: dict[str, Any]) -> tuple[Plan, VariableValues] | None:
        """The plan and the coerced variables; None when strawberry must answer."""
        document = self.document(query)
        if document.node is None:
            return None
        try:
            operation = operation_of(list(document.node.definitions), operation_name)
        except Uncompilable:
            return None
        if operation.operation is not OperationType.QUERY:
            return None
        variables = get_variable_values(self.schema, operation.variable_definitions or (),
                                        raw_variables)
        if not isinstance(variables, VariableValues):
            return None  # strawberry reports the bad variables
        shape = tuple(variables.coerced.get(n) for n in document.directive_variables)
        key = (query, operation_name, shape)
        plan = self.pinned_plans.get(key) or self.plans.get(key)
        if plan is None:
            plan = self.plans.put(key, self._plan(query, operation_name, operation, document,
                                                  variables.coerced))
        return (plan, variables) if plan.roots is not None else None

    async def answer(self, pool: asyncpg.Pool, principal: Principal, request_id: str,
                     query: str, operation_name: str | None,
                     raw_variables: dict[str, Any]) -> Answer | None:
        """The response body for a compiled read; None when strawberry must answer."""
        planned = self.plan(query, operation_name, raw_variables)
        if planned is None:
            return None
        plan, variables = planned
        assert plan.roots is not None

        try:
            rendered = Statement(self.schema, principal, variables, plan.label,
                                 request_id).render(plan.roots)
        except Uncompilable:
            return None
        label = plan.label or "anonymous"
        if rendered.sql is None:
            return Answer(_body(rendered, None, None), label)
        async with Reader(pool) as reader:
            row = await reader.read(rendered.sql, rendered.args)
        body = _body(rendered, row, request_state(principal, row).freeze)
        audit = row.get("audit")
        if audit is not None:
            # No answer before its audit row is committed (raises if the commit fails). The
            # read's connection is back in the pool: the commit may need it.
            await self._commits(pool).commit(audit)
        return Answer(body, label)

    def _commits(self, pool: asyncpg.Pool) -> AuditCommits:
        commits = self.commits.get(pool)
        if commits is None:
            # A closed pool's rows were all committed or failed; forget it.
            self.commits = {p: c for p, c in self.commits.items() if not p.is_closing()}
            commits = self.commits[pool] = AuditCommits(pool)
        return commits


def _body(rendered: Rendered, row: Any, freeze: Freeze | None) -> bytes:
    """The response: root values as PostgreSQL built them, errors as strawberry formats them;
    `freeze` is the one binding the principal, if any (the statement read it)."""
    errors = list(rendered.errors)
    pieces = []
    for root in rendered.roots:
        if root.freeze_sensitive and freeze is not None:
            errors.append(refusal(Forbidden(freeze.describe()), root.nodes, [root.key]))
            piece = b"null"
        elif root.unless_frozen is not None:
            errors.append(root.unless_frozen)
            piece = b"null"
        elif root.column is not None:
            value = row[root.column] if row is not None else None
            if value is None:
                if root.not_found is not None:
                    errors.append(refusal(NotFound(root.not_found), root.nodes, [root.key]))
                piece = b"null"
            else:
                piece = value.encode()
                if rendered.sites and WITHHELD_MARK in piece:
                    piece = _withhold(piece, root.key, rendered.sites, errors)
        else:
            piece = root.constant or b"null"
        pieces.append(json.dumps(root.key).encode() + b":" + piece)
    body = b'{"data":{' + b",".join(pieces) + b"}"
    if errors:
        body += b',"errors":' + json.dumps([e.formatted for e in errors],
                                            separators=(",", ":")).encode()
    return body + b"}"


def _withhold(piece: bytes, key: str, sites: list[Site], errors: list[GraphQLError]) -> bytes:
    """A root value with each withheld-field marker replaced by null and a FORBIDDEN error at
    its path, as strawberry reports a field a district freeze withholds."""

    def walk(value: Any, path: list[str | int]) -> Any:
        if isinstance(value, dict):
            if WITHHELD_KEY in value:
                site = sites[value["!site"]]
                errors.append(refusal(Forbidden(resident_withheld(
                    site.type_name, site.field, value[WITHHELD_KEY])), site.nodes, path))
                return None
            return {k: walk(v, [*path, k]) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, [*path, i]) for i, v in enumerate(value)]
        return value

    return json.dumps(walk(json.loads(piece), [key]), separators=(",", ":")).encode()
