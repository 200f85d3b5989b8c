"""One validation per field: Python's check and the database CHECK accept exactly the same text."""

from __future__ import annotations

import os
import time

import asyncpg
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth import TokenVerifier
from api.errors import AuthError
from api.fields import PATTERNS, check_sql, is_id, valid
from api.settings import Settings
from tests.api.client import run
from tests.api.conftest import Cast
from tests.conftest import JWT_SECRET

EXAMPLES = int(os.environ.get("VAXVAULT_SOAK_EXAMPLES", "40"))
# Text PostgreSQL can hold (no NUL, no lone surrogates), leaning towards near-misses: digits of
# other scripts, superscripts, trailing newlines, the right lengths.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_NEAR = st.sampled_from(["0", "7", "9", "²", "\u0661", "\u0663", "\n", " ", "+", "8801", "+8801", "x"])
candidates = st.one_of(
    st.text(_CHARS, max_size=20),
    st.lists(_NEAR, max_size=18).map("".join),
    st.sampled_from(["1234567890", "1234567890\n", "123456789²", "+88017123456789",
                     "+8801712345678", "+8801712345678\n", "1234567890123",
                     "".join(chr(0x0660 + d) for d in range(10))]),
)


async def _constraint(owner: asyncpg.Connection, table: str, column: str) -> tuple[str, str]:
    row = await owner.fetchrow(
        "SELECT pg_get_constraintdef(c.oid) AS def, pg_get_expr(c.conbin, c.conrelid) AS expr "
        "FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'c' "
        "AND pg_get_constraintdef(c.oid) LIKE '%' || $2 || ' ~%'", table, column)
    assert row is not None, f"no CHECK on {table}.{column}"
    return row["def"], row["expr"]


@pytest.mark.parametrize(("table", "column"), list(PATTERNS))
async def test_the_database_check_is_written_from_the_python_pattern(
        owner: asyncpg.Connection, table: str, column: str) -> None:
    definition, _ = await _constraint(owner, table, column)
    python = check_sql(table, column)
    assert definition == f"CHECK (({python}::text))"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.lists(candidates, min_size=1, max_size=40))
async def test_python_and_postgresql_accept_exactly_the_same_values(
        owner: asyncpg.Connection, values: list[str]) -> None:
    for table, column in PATTERNS:
        _, expr = await _constraint(owner, table, column)
        rows = await owner.fetch(f"SELECT v, ({expr}) AS ok FROM unnest($1::text[]) "
                                 f"AS t({column}) CROSS JOIN LATERAL (SELECT {column} AS v) x",
                                 values)
        database = {r["v"]: r["ok"] for r in rows}
        assert {v: valid(table, column, v) for v in values} == database


@pytest.mark.parametrize("value", ["42", "²", "\u0661\u0662", "4\n", "", "9" * 19])
def test_ids_are_ascii_digits_only(value: str) -> None:
    assert is_id(value) == (value.isascii() and value.isdigit() and len(value) <= 18)


@pytest.mark.parametrize("claims", [{"role": "recipient", "sub": "²"},
                                    {"role": "recipient", "sub": "\u0661\u0662"},
                                    {"role": "recipient", "sub": "12\n"},
                                    {"role": "center_staff", "sub": "n", "center_id": "\u0661\u0662"}])
def test_a_validly_signed_token_with_non_ascii_digits_is_refused_as_auth(claims: dict) -> None:
    # Before: "²".isdigit() let it through to int(), a ValueError, a 500.
    token = jwt.encode({**claims, "exp": int(time.time()) + 600}, JWT_SECRET, algorithm="HS256")
    verifier = TokenVerifier(Settings(jwt_secret=JWT_SECRET))
    with pytest.raises(AuthError):
        verifier.verify(f"Bearer {token}")
    good = jwt.encode({"role": "recipient", "sub": "12", "exp": int(time.time()) + 600},
                      JWT_SECRET, algorithm="HS256")
    assert verifier.verify(f"Bearer {good}").recipient_id == 12


@pytest.mark.parametrize(("field", "value"), [("nationalId", "1234567890\\n"),
                                              ("phone", "+8801712345678\\n"),
                                              ("nationalId", "123456789\u00b2")])
async def test_a_near_miss_is_a_validation_failure_not_a_masked_error(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast, field: str,
        value: str) -> None:
    fields = {"nationalId": "5550001234", "phone": "+8801712345670", field: value}
    arguments = (f'nationalId: "{fields["nationalId"]}", fullName: "Test", birthDate: '
                 f'"1990-01-01", sex: "female", phone: "{fields["phone"]}", '
                 f'districtId: "{cast.district_id}"')
    answer = await run(pool, seeded_settings, cast.staff,
                       f"mutation {{ registerRecipient(input: {{{arguments}}}) {{ __typename "
                       "... on ValidationFailed { field } } }")
    assert not answer.errors, answer.errors
    assert answer.data == {"registerRecipient": {"__typename": "ValidationFailed", "field": field}}
