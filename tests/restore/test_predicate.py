"""The predicate language: parse, reject, render, compile, prune."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.restore import predicate, predicate_sql
from backup.restore.errors import PredicateError
from backup.restore.predicate import (
    And,
    Between,
    Call,
    Column,
    Compare,
    InList,
    IsNull,
    Literal,
    Not,
    Or,
)

DOSE_TYPES = {"id": "bigint", "recipient_id": "bigint", "dose_number": "smallint",
              "vaccine_code": "text", "lot_number": "text", "administered_on": "date",
              "center_id": "integer", "next_due_on": "date"}


def test_parses_the_incident_predicate() -> None:
    expr = predicate.parse("administered_on = '2021-10-13' AND dose_number = 1")
    assert expr == And((Compare("=", Column("administered_on"), Literal("2021-10-13")),
                        Compare("=", Column("dose_number"), Literal(1))))


def test_precedence_and_every_form() -> None:
    expr = predicate.parse(
        "NOT lower(lot_number) IN ('a', 'b''c') OR dose_number BETWEEN 1 AND 2 "
        "AND administered_on IS NOT NULL AND center_id NOT IN (3) OR id <> 2.5")
    assert expr == Or((
        Not(InList(Call("lower", Column("lot_number")), (Literal("a"), Literal("b'c")))),
        And((Between(Column("dose_number"), Literal(1), Literal(2)),
             IsNull(Column("administered_on"), negated=True),
             InList(Column("center_id"), (Literal(3),), negated=True))),
        Compare("<>", Column("id"), Literal(Decimal("2.5"))),
    ))


@pytest.mark.parametrize(("text", "fragment"), [
    ("dose_number = 1; DROP TABLE doses", "character 16"),
    ("dose_number = 1 -- hidden", "comments are not allowed"),
    ("dose_number = 1 /* x */", "comments are not allowed"),
    ("id IN (SELECT id FROM doses)", "SELECT is not allowed"),
    ("id = 1 OR NOT", "ends too early"),
    ("id = 1 AND AND", "unexpected keyword AND"),
    ("pg_sleep(10) = 1", "unknown function 'pg_sleep'"),
    ("lot_number = 'open", "unterminated string"),
    ("", "empty"),
    ("dose_number =", "ends too early"),
    ("dose_number = 1 dose_number", "expected AND, OR"),
    ("1 + 1 = 2", "unexpected '+'"),
    ("id IN (id)", "literal values only"),
    ("dose_number", None),  # a bare column is a boolean expression; validated later
])
def test_rejects_what_is_not_one_expression(text: str, fragment: str | None) -> None:
    if fragment is None:
        assert predicate.parse(text) == predicate.Column(text)
        return
    with pytest.raises(PredicateError, match="bad predicate") as caught:
        predicate.parse(text)
    assert fragment in str(caught.value)


def test_validate_names_unknown_columns_and_lists_the_real_ones() -> None:
    with pytest.raises(PredicateError, match="no column password; its columns are administered_on"):
        predicate_sql.validate(predicate.parse("password = 'x'"), DOSE_TYPES, "doses")
    with pytest.raises(PredicateError, match="lower\\(\\) takes text, not date"):
        predicate_sql.validate(predicate.parse("lower(administered_on) = 'x'"), DOSE_TYPES, "doses")


def test_structured_filters_build_the_same_ast() -> None:
    assert predicate.from_filter("dose_number", "eq", [1]) == predicate.parse("dose_number = 1")
    assert predicate.from_filter("id", "in", [1, 2]) == predicate.parse("id IN (1, 2)")
    assert predicate.from_filter("administered_on", "isNull", []) == \
        predicate.parse("administered_on IS NULL")
    with pytest.raises(PredicateError, match="between on 'id' takes 2 value"):
        predicate.from_filter("id", "between", [1])
    with pytest.raises(PredicateError, match="unknown filter operator 'like'"):
        predicate.from_filter("id", "like", ["%"])


names = st.sampled_from(sorted(DOSE_TYPES))
literals = st.one_of(
    st.text(max_size=12).map(Literal),
    st.integers(min_value=-10**12, max_value=10**12).map(Literal),
    st.booleans().map(Literal),
)
operands = st.one_of(names.map(Column), literals, names.map(lambda n: Call("lower", Column(n))))
conditions = st.one_of(
    st.builds(Compare, st.sampled_from(predicate.COMPARISONS), operands, operands),
    st.builds(InList, operands, st.lists(literals, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(Between, operands, operands, operands, st.booleans()),
    st.builds(IsNull, operands, st.booleans()),
)
expressions = st.recursive(conditions, lambda inner: st.one_of(
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    inner.map(Not),
), max_leaves=8)


@given(expressions)
def test_render_then_parse_is_the_identity(expr: predicate.Expr) -> None:
    assert predicate.parse(predicate.render(expr)) == expr


@given(st.text(min_size=1, max_size=30))
def test_values_never_enter_the_sql_text(value: str) -> None:
    sql, params = predicate_sql.to_sql(Compare("=", Column("lot_number"), Literal(value)), DOSE_TYPES)
    assert sql == '("lot_number" = $1::text)'
    assert params == [value]


@given(st.text(max_size=40))
def test_parse_either_succeeds_or_raises_predicate_error(text: str) -> None:
    try:
        expr = predicate.parse(text)
    except PredicateError:
        return
    assert predicate.parse(predicate.render(expr)) == expr


HOSTILE = ["'; DROP TABLE doses; --", "x' OR '1'='1", "$1", "\\'", "\x01", "🙂", "a\nb"]


async def test_compiled_sql_runs_on_postgres_and_treats_values_as_data(seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await conn.execute("SET standard_conforming_strings = on")
        rng = random.Random(5)
        alphabet = "'\\\";$-/*\n\tabc🙂é\x01"
        for value in [*HOSTILE, *("".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(40))]:
            inline = predicate_sql.to_inline_sql(Compare("=", Literal(value), Literal(value)), DOSE_TYPES)
            assert await conn.fetchval(f"SELECT {predicate_sql.quote_literal(value)}::text") == value
            assert await conn.fetchval(f"SELECT {inline}") is True
        total = await conn.fetchval("SELECT count(*) FROM doses")
        for value in HOSTILE:
            expr = predicate.parse(f"lot_number = {predicate.render(Literal(value))} OR dose_number = 1")
            sql, params = predicate_sql.to_sql(expr, DOSE_TYPES)
            matched = await conn.fetchval(f"SELECT count(*) FROM doses WHERE {sql}", *params)
            assert matched == await conn.fetchval("SELECT count(*) FROM doses WHERE dose_number = 1")
        day = await conn.fetchval("SELECT min(administered_on) FROM doses")
        expr = predicate.parse(f"administered_on = '{day.isoformat()}' AND dose_number IN (1, 2) "
                               "AND lower(lot_number) IS NOT NULL")
        sql, params = predicate_sql.to_sql(expr, DOSE_TYPES, first_parameter=2, alias="d")
        matched = await conn.fetchval(
            f"SELECT count(*) FROM doses d WHERE d.id > $1 AND {sql}", 0, *params)
        assert matched == await conn.fetchval(
            "SELECT count(*) FROM doses WHERE administered_on = $1 AND dose_number <= 2", day)
        assert matched > 0
        assert await conn.fetchval("SELECT count(*) FROM doses") == total
    finally:
        await conn.close()


def test_may_match_prunes_chunks_by_range() -> None:
    ranges = {"id": (100, 199), "administered_on": (date(2021, 10, 1), date(2021, 10, 31))}
    check = lambda text: predicate_sql.may_match(predicate.parse(text), ranges)  # noqa: E731
    assert check("administered_on = '2021-10-13' AND dose_number = 1")
    assert not check("administered_on = '2021-11-13' AND dose_number = 1")
    assert check("administered_on = '2021-11-13' OR dose_number = 1")
    assert not check("id < 100")
    assert check("id <= 100")
    assert not check("id > 199")
    assert not check("id IN (5, 300)")
    assert check("id IN (5, 150)")
    assert not check("administered_on BETWEEN '2021-11-01' AND '2021-12-01'")
    assert not check("200 <= id")
    assert check("NOT id = 1")
    assert not check("id = NULL")
    assert check("administered_on = 'not a date'")
    assert predicate_sql.may_match(None, ranges)
