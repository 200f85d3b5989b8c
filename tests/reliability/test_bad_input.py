"""Bad input over HTTP: malformed bodies, invalid ids and dates, SQL-injection strings in every
string argument, and generated inputs. Each gets a clear error (4xx, or a GraphQL error with a
message), never a 5xx, and nothing in the registry changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth import mint_token
from api.principal import Role
from api.settings import Settings
from tests import harness
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

# Who sends a case; the tokens themselves are minted per test (fixture `headers`).
ADMIN, STAFF = "admin", "staff"
INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE recipients; --",
    "x'); DELETE FROM doses; --",
    "' UNION SELECT national_id, phone FROM recipients --",
    "%' OR full_name LIKE '%",
    "\\'; TRUNCATE audit_log; --",
    "$1",
    "\x00",
    "1 OR 1=1",
]
# Every string (and ID) argument a client can send to a read, with the role allowed to send it.
STRING_ARGUMENTS = [
    ("query($v: String) { recipients(filter: {nationalId: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { recipients(filter: {phone: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { recipients(filter: {namePrefix: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { recipients(after: $v) { edges { node { id } } } }", ADMIN),
    ("query($v: ID) { recipients(filter: {districtId: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: ID!) { recipient(id: $v) { id } }", ADMIN),
    ("query($v: String) { doses(filter: {vaccine: $v}) { edges { node { id } } } }", STAFF),
    ("query($v: String) { doses(after: $v) { edges { node { id } } } }", STAFF),
    ("query($v: ID) { doses(filter: {recipientId: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { coverage(groupBy: [VACCINE], filter: {vaccine: $v}) { doses } }", ADMIN),
    ("query($v: ID) { coverage(filter: {districtId: $v}) { doses } }", ADMIN),
    ("query($v: ID) { centers(districtId: $v) { id } }", ADMIN),
    ("query($v: ID) { dosesDue(from: \"2021-01-01\", centerId: $v) { dueOn } }", ADMIN),
    ("query($v: String) { auditLog(filter: {action: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { auditLog(filter: {actorSub: $v}) { edges { node { id } } } }", ADMIN),
    ("query($v: String) { auditLog(filter: {actorRole: $v}) { edges { node { id } } } }", ADMIN),
]
MALFORMED_BODIES: list[tuple[str, bytes, str]] = [
    ("truncated JSON", b'{"query": ', "application/json"),
    ("not JSON", bytes(range(256)), "application/json"),
    ("a JSON list", b"[1, 2]", "application/json"),
    ("a JSON string", b'"x"', "application/json"),
    ("a JSON number", b"42", "application/json"),
    ("no query", b'{"foo": 1}', "application/json"),
    ("variables not an object", b'{"query": "{ districts { id } }", "variables": "x"}',
     "application/json"),
    ("unsupported content type", b"{ districts { id } }", "text/plain"),
    ("over 64 KiB", b'{"query": "{ districts { id ' + b"id " * 40_000 + b'} }"}',
     "application/json"),
]
MALFORMED_QUERIES = [
    "{ districts { id ",
    "{ nope }",
    "{" + "a{" * 3000 + "b" + "}" * 3001,
    "{ " + " ".join(f"a{i}: districts {{ id }}" for i in range(100)) + " }",
    # deeper than the depth limit
    "{ recipients { edges { node { doses { recipient { doses { recipient { doses { recipient {"
    " doses { recipient { id } } } } } } } } } } } }",
    "mutation { nope }",
]
INVALID_VALUES = [
    ("query { recipient(id: \"abc\") { id } }", ADMIN),
    ("query { recipient(id: \"-1\") { id } }", ADMIN),
    ("query { recipient(id: \"99999999999999999999999\") { id } }", ADMIN),
    ("query { doses(filter: {administeredFrom: \"2021-13-45\"}) { edges { node { id } } } }", STAFF),
    ("query { doses(first: -1) { edges { node { id } } } }", STAFF),
    ("query { doses(first: 101) { edges { node { id } } } }", STAFF),
    ("query { doses(first: 99999999999) { edges { node { id } } } }", STAFF),
    ("query { dosesDue(from: \"yesterday\") { dueOn } }", ADMIN),
    ("query { dosesDue(from: \"2022-01-01\", to: \"2021-01-01\") { dueOn } }", ADMIN),
    ("query { coverage(filter: {doseNumber: 2147483648}) { doses } }", ADMIN),
    ("query { recipients(after: \"bm90LWEtY3Vyc29y\") { edges { node { id } } } }", ADMIN),
]


async def _fingerprint(url: str) -> tuple[Any, ...]:
    conn = await asyncpg.connect(url)
    try:
        return tuple(await conn.fetchrow(
            "SELECT (SELECT count(*) FROM recipients), (SELECT count(*) FROM doses), "
            "(SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM recipients r), "
            "(SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM doses d)"))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def served_registry(postgres_url: str, seeded_template: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, httpx.Client]]:
    name = harness.unique_name("vvt_badinput")
    url = harness.create_database(postgres_url, name, template=seeded_template)
    config = Settings(database_url=url, jwt_secret=JWT_SECRET,
                      state_dir=tmp_path_factory.mktemp("state"))
    try:
        with live_server(config) as base, httpx.Client(base_url=base, timeout=30) as http:
            before = asyncio.run(_fingerprint(url))
            yield url, http
            assert asyncio.run(_fingerprint(url)) == before, "bad input changed the registry"
    finally:
        harness.drop_database(postgres_url, name)


@pytest.fixture
def headers() -> dict[str, dict[str, str]]:
    """Fresh tokens for this test: a long run never meets a token minted an hour before."""
    return {ADMIN: {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.ADMIN,
                                                            sub="bad-input-admin")},
            STAFF: {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.CENTER_STAFF,
                                                            sub="staff-1", center_id=1)}}


def assert_clear_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code == 200:
        errors = response.json().get("errors")
        assert errors, response.text[:300]
        assert all(e.get("message") for e in errors)
    else:
        assert response.text.strip()


@pytest.mark.parametrize(("label", "body", "content_type"), MALFORMED_BODIES,
                         ids=[m[0] for m in MALFORMED_BODIES])
def test_malformed_body(served_registry: tuple[str, httpx.Client], label: str, body: bytes,
                        content_type: str) -> None:
    _, http = served_registry
    response = http.post("/graphql", content=body, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, (label, response.status_code, response.text[:200])
    # The connection is still good for the next request.
    assert http.post("/graphql", json={"query": "{ vaccines { code } }"}).status_code == 200


@pytest.mark.parametrize("query", MALFORMED_QUERIES, ids=range(len(MALFORMED_QUERIES)))
def test_malformed_graphql(served_registry: tuple[str, httpx.Client], query: str,
                           headers: dict[str, dict[str, str]]) -> None:
    _, http = served_registry
    assert_clear_error(http.post("/graphql", json={"query": query}, headers=headers[ADMIN]))


@pytest.mark.parametrize(("query", "sender"), INVALID_VALUES, ids=range(len(INVALID_VALUES)))
def test_invalid_ids_and_dates(served_registry: tuple[str, httpx.Client], query: str,
                               sender: str, headers: dict[str, dict[str, str]]) -> None:
    _, http = served_registry
    response = http.post("/graphql", json={"query": query}, headers=headers[sender])
    assert_clear_error(response)


@pytest.mark.parametrize(("query", "sender"), STRING_ARGUMENTS, ids=range(len(STRING_ARGUMENTS)))
def test_sql_injection_in_string_arguments(served_registry: tuple[str, httpx.Client], query: str,
                                           sender: str, headers: dict[str, dict[str, str]]) -> None:
    _, http = served_registry
    for value in INJECTIONS:
        response = http.post("/graphql", json={"query": query, "variables": {"v": value}},
                             headers=headers[sender])
        assert response.status_code < 500, (value, response.text[:300])
        payload = response.json()
        if payload.get("errors"):
            assert all(e.get("message") for e in payload["errors"]), payload
            continue
        # No error: an honest empty answer, never rows (or counts) the filter did not match.
        (answer,) = payload["data"].values()
        rows = answer["edges"] if isinstance(answer, dict) else answer
        assert rows == [] or rows == [{"doses": 0}], (query, value, rows[:3])


@pytest.mark.parametrize("field", ["nationalId", "phone", "sex", "birthDate", "districtId"])
def test_sql_injection_in_mutation_input_is_refused(served_registry: tuple[str, httpx.Client],
                                                    field: str,
                                                    headers: dict[str, dict[str, str]]) -> None:
    _, http = served_registry
    mutation = """mutation($input: RegisterRecipientInput!) { registerRecipient(input: $input) {
        __typename ... on ValidationFailed { message } } }"""
    for value in INJECTIONS:
        data = {"nationalId": "1999000000", "fullName": "Injected Person", "birthDate": "1990-01-01",
                "sex": "female", "districtId": "1", "phone": "+8801711111111", "centerId": "1",
                field: value}
        response = http.post("/graphql", json={"query": mutation, "variables": {"input": data}},
                             headers=headers[ADMIN])
        assert response.status_code < 500, response.text[:300]
        payload = response.json()
        outcome = (payload.get("data") or {}).get("registerRecipient")
        assert payload.get("errors") or (outcome and outcome["__typename"] == "ValidationFailed"), \
            (field, value, payload)


def _sample(url: str, sql: str) -> list[Any]:
    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return [r[0] for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    return asyncio.run(fetch())


def _count(url: str, sql: str, *args: Any) -> int:
    async def fetch() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()
    return asyncio.run(fetch())


GENERATED = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_generated_recipient_filters(served_registry: tuple[str, httpx.Client],
                                     headers: dict[str, dict[str, str]]) -> None:
    url, http = served_registry
    people = _sample(url, "SELECT ARRAY[full_name, national_id] FROM recipients ORDER BY id LIMIT 50")
    query = """query($p: String, $n: String, $f: Int) {
        recipients(filter: {namePrefix: $p, nationalId: $n}, first: $f) {
        edges { node { fullName nationalId } } } }"""
    # A real person's name prefix (in any case), with or without their own national id, often
    # enough to reach the comparison with the database; any text and page size for the rest.
    real = st.tuples(st.sampled_from(people), st.integers(1, 6), st.booleans(), st.booleans()).map(
        lambda t: ((t[0][0][:t[1]].upper() if t[2] else t[0][0][:t[1]]), t[0][1] if t[3] else None))
    # Any text a JSON client can send (no lone surrogates), but NUL: see the xfail below.
    text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
    compared = 0

    @GENERATED
    @given(filters=st.one_of(real, st.tuples(text, st.one_of(st.none(), text.filter(bool)))),
           first=st.one_of(st.none(), st.integers(1, 100), st.integers(-5, 200)))
    def check(filters: tuple[str, str | None], first: int | None) -> None:
        nonlocal compared
        prefix, national_id = filters
        response = http.post("/graphql", json={
            "query": query, "variables": {"p": prefix, "n": national_id, "f": first}},
            headers=headers[ADMIN])
        assert response.status_code < 500, response.text[:300]
        payload = response.json()
        if payload.get("errors"):
            assert all(e.get("message") for e in payload["errors"])
            assert not prefix.strip() or (first is not None and not 1 <= first <= 100), payload
            return
        edges = payload["data"]["recipients"]["edges"]
        for edge in edges:
            assert edge["node"]["fullName"].lower().startswith(prefix.strip().lower())
            if national_id is not None:
                assert edge["node"]["nationalId"] == national_id
        # Case folded as a client means it (Python's lower(), e.g. the Kelvin sign is a k).
        matching = _count(url, "SELECT count(*) FROM recipients WHERE starts_with("
                               "lower(full_name), $1) AND ($2::text IS NULL OR "
                               "national_id = $2)", prefix.strip().lower(), national_id)
        assert len(edges) == min(matching, first or 20), (prefix, national_id, first)
        compared += bool(edges)

    check()
    assert compared >= 10, f"only {compared} generated filters matched rows to compare"


def test_a_nul_character_in_text_is_a_clear_error(served_registry: tuple[str, httpx.Client],
                                                  headers: dict[str, dict[str, str]]) -> None:
    _, http = served_registry
    response = http.post("/graphql", json={
        "query": "query($p: String) { recipients(filter: {namePrefix: $p}) { edges { node { id } } } }",
        "variables": {"p": "Ab\x00"}}, headers=headers[ADMIN])
    assert response.status_code == 200
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]


def test_generated_coverage_inputs(served_registry: tuple[str, httpx.Client],
                                   headers: dict[str, dict[str, str]]) -> None:
    url, http = served_registry
    query = """query($d: Date, $g: [CoverageDimension!]) {
        coverage(groupBy: $g, filter: {administeredFrom: $d}) { doses recipients } }"""
    dimensions = ["DISTRICT", "CENTER", "DAY", "DOSE_NUMBER", "VACCINE"]
    compared = 0

    @GENERATED
    @given(day=st.one_of(st.dates(date(2020, 6, 1), date(2023, 6, 1)).map(date.isoformat),
                         st.text(max_size=12)),
           group=st.one_of(st.lists(st.sampled_from(dimensions), max_size=3, unique=True),
                           st.lists(st.sampled_from([*dimensions, "NOPE"]), max_size=3)))
    def check(day: str, group: list[str]) -> None:
        nonlocal compared
        response = http.post("/graphql", json={"query": query, "variables": {"d": day, "g": group}},
                             headers=headers[ADMIN])
        assert response.status_code < 500, response.text[:300]
        payload = response.json()
        if payload.get("errors"):
            assert all(e.get("message") for e in payload["errors"])
            return
        rows = payload["data"]["coverage"]
        assert all(row["doses"] >= row["recipients"] >= 0 for row in rows), rows
        # Admin sees exact counts: the groups add up to the doses given since `day`.
        expected = _count(url, "SELECT count(*) FROM doses WHERE administered_on >= $1::date",
                          date.fromisoformat(day))
        assert sum(row["doses"] for row in rows) == expected, (day, group)
        compared += 1

    check()
    assert compared >= 15, f"only {compared} generated coverage inputs reached the comparison"
