"""The portal queries, each as ours and as PostGraphile would answer it, and their load runs.

Every query rotates over many ids (random recipients, random centers) so neither side serves
one cached row. Before loading, each side answers a sample once and must return data without
errors; a side that cannot (a query our build does not have yet) is reported as unavailable.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from api.auth import mint_token
from api.domain.pagination import encode_cursor
from api.principal import Role
from bench import wrk
from bench.cluster import admin
from bench.progress import say
from bench.server import BENCH_JWT_SECRET, PEER_SCHEMA

ROTATION = 400  # distinct request bodies per query and side
# Coverage is a dashboard query over every dose: a portal does not fire it from 50 clients at
# once, and doing so only measures the queue. Both sides get the same lower concurrency.
HEAVY_QUERIES = {"coverage_by_district": 8}

# PostGraphile has no aggregates without plugins; the peer gets the same count as a SQL
# function, which PostGraphile exposes as a root field.
PEER_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {PEER_SCHEMA};
CREATE OR REPLACE FUNCTION {PEER_SCHEMA}.coverage_by_district()
RETURNS TABLE (district_id integer, doses bigint, recipients bigint)
LANGUAGE sql STABLE AS $$
    SELECT c.district_id, count(*), count(DISTINCT d.recipient_id)
    FROM doses d JOIN centers c ON c.id = d.center_id
    GROUP BY c.district_id ORDER BY c.district_id
$$;
"""

OURS = {
    "districts": "query Districts { districts { id name division } }",
    "recipient_with_doses_staff": """query RecipientWithDoses($id: ID!) { recipient(id: $id) {
        id nationalId fullName birthDate sex phone district { id name } registeredAt
        doses { id doseNumber lotNumber administeredOn nextDueOn center { id name } } } }""",
    "recipients_page_100": """query RecipientsPage($after: String) {
        recipients(first: 100, after: $after) { edges { cursor node {
        id nationalId fullName sex district { id name }
        doses { id doseNumber administeredOn center { id name } } } }
        pageInfo { hasNextPage endCursor } } }""",
    "me_recipient": """query Me { me { role recipient {
        id nationalId fullName birthDate phone district { id name }
        doses { id doseNumber lotNumber administeredOn nextDueOn center { id name } } } } }""",
    "recipient_with_doses": """query RecipientWithDoses($id: ID!) { recipient(id: $id) {
        id nationalId fullName birthDate sex phone district { id name } registeredAt
        doses { id doseNumber lotNumber administeredOn nextDueOn center { id name } } } }""",
    "center_latest_doses": """query CenterLatestDoses($centerId: ID!) {
        doses(filter: {centerId: $centerId}, first: 50) { edges { node {
        id doseNumber lotNumber administeredOn nextDueOn recipient { id nationalId fullName } } } } }""",
    "coverage_by_district": """query CoverageByDistrict { coverage(groupBy: [DISTRICT]) {
        district { id name } doses recipients } }""",
}
PEER = {
    "districts": "query Districts { allDistricts(orderBy: ID_ASC) { nodes { id name division } } }",
    "recipient_with_doses_staff": """query RecipientWithDoses($id: BigInt!) { recipientById(id: $id) {
        id nationalId fullName birthDate sex phone districtByDistrictId { id name } registeredAt
        dosesByRecipientId(orderBy: DOSE_NUMBER_ASC) { nodes { id doseNumber lotNumber
        administeredOn nextDueOn centerByCenterId { id name } } } } }""",
    "recipients_page_100": """query RecipientsPage($after: Cursor) {
        allRecipients(first: 100, after: $after, orderBy: PRIMARY_KEY_ASC) { edges { cursor node {
        id nationalId fullName sex districtByDistrictId { id name }
        dosesByRecipientId(orderBy: DOSE_NUMBER_ASC) { nodes { id doseNumber administeredOn
        centerByCenterId { id name } } } } } pageInfo { hasNextPage endCursor } } }""",
    "me_recipient": """query Me($id: BigInt!) { recipientById(id: $id) {
        id nationalId fullName birthDate phone districtByDistrictId { id name }
        dosesByRecipientId(orderBy: DOSE_NUMBER_ASC) { nodes { id doseNumber lotNumber
        administeredOn nextDueOn centerByCenterId { id name } } } } }""",
    "recipient_with_doses": """query RecipientWithDoses($id: BigInt!) { recipientById(id: $id) {
        id nationalId fullName birthDate sex phone districtByDistrictId { id name } registeredAt
        dosesByRecipientId(orderBy: DOSE_NUMBER_ASC) { nodes { id doseNumber lotNumber
        administeredOn nextDueOn centerByCenterId { id name } } } } }""",
    "center_latest_doses": """query CenterLatestDoses($centerId: Int!) {
        allDoses(condition: {centerId: $centerId}, orderBy: [ADMINISTERED_ON_DESC, ID_DESC], first: 50)
        { nodes { id doseNumber lotNumber administeredOn nextDueOn
        recipientByRecipientId { id nationalId fullName } } } }""",
    "coverage_by_district": """query CoverageByDistrict { coverageByDistrict {
        nodes { districtId doses recipients } } }""",
}
# The queries of `make bench`; the portal comparison (bench/compare.py) runs PORTAL_QUERIES.
QUERIES = ("districts", "recipient_with_doses", "center_latest_doses", "coverage_by_district")
PORTAL_QUERIES = ("recipient_with_doses", "recipient_with_doses_staff", "center_latest_doses",
                  "recipients_page_100", "me_recipient")
# A client that asks for the GraphQL-over-HTTP media type is answered by strawberry, never by
# the compiled path: the same server then measures both paths.
STRAWBERRY_ACCEPT = "application/graphql-response+json"


@dataclass(frozen=True)
class Population:
    recipients: int
    centers: int
    # (center id, id of a recipient registered there), drawn from the database
    registered: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class QueryResult:
    query: str
    side: str
    available: bool
    note: str = ""
    load: wrk.Load | None = None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        return data


Request = tuple[dict[str, str], str]


def _body(query: str, variables: dict[str, object]) -> str:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":"))


def _headers(token: str | None, accept: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _peer_cursor(recipient_id: int) -> str:
    """PostGraphile v4's cursor for allRecipients(orderBy: PRIMARY_KEY_ASC) after an id."""
    raw = json.dumps(["primary_key_asc", [recipient_id]], separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def ours_requests(name: str, population: Population, rng: random.Random,
                  accept: str | None = None) -> list[Request]:
    """Scope and audit on: the roles a portal would use for each query."""
    query = OURS[name]
    if name == "recipient_with_doses_staff":
        out = []
        for center, recipient in population.registered[:ROTATION]:
            token = mint_token(BENCH_JWT_SECRET, Role.CENTER_STAFF, sub=f"staff-{center}",
                               center_id=center, ttl_s=86400)
            out.append((_headers(token, accept), _body(query, {"id": str(recipient)})))
        return out
    if name == "recipients_page_100":
        token = mint_token(BENCH_JWT_SECRET, Role.ADMIN, sub="bench-admin", ttl_s=86400)
        return [(_headers(token, accept), _body(query, {"after": encode_cursor(
            "recipient", [rng.randint(1, max(population.recipients - 200, 1))])}))
            for _ in range(ROTATION)]
    if name == "me_recipient":
        out = []
        for _ in range(ROTATION):
            token = mint_token(BENCH_JWT_SECRET, Role.RECIPIENT,
                               sub=str(rng.randint(1, population.recipients)), ttl_s=86400)
            out.append((_headers(token, accept), _body(query, {})))
        return out
    if name == "recipient_with_doses":
        token = mint_token(BENCH_JWT_SECRET, Role.ADMIN, sub="bench-admin", ttl_s=86400)
        return [(_headers(token, accept), _body(query, {"id": str(rng.randint(1, population.recipients))}))
                for _ in range(ROTATION)]
    if name == "center_latest_doses":
        out = []
        for _ in range(ROTATION):
            center = rng.randint(1, population.centers)
            token = mint_token(BENCH_JWT_SECRET, Role.CENTER_STAFF, sub=f"staff-{center}",
                               center_id=center, ttl_s=86400)
            out.append((_headers(token, accept), _body(query, {"centerId": str(center)})))
        return out
    if name == "coverage_by_district":
        token = mint_token(BENCH_JWT_SECRET, Role.AUDITOR, sub="bench-auditor", ttl_s=86400)
        return [(_headers(token), _body(query, {}))]
    return [(_headers(None), _body(query, {}))]


def peer_requests(name: str, population: Population, rng: random.Random) -> list[Request]:
    """The same ids as ours_requests draws with the same seed (no roles: PostGraphile has none)."""
    query = PEER[name]
    if name == "recipient_with_doses_staff":
        return [(_headers(None), _body(query, {"id": recipient}))
                for _, recipient in population.registered[:ROTATION]]
    if name == "recipients_page_100":
        return [(_headers(None), _body(query, {"after": _peer_cursor(
            rng.randint(1, max(population.recipients - 200, 1)))})) for _ in range(ROTATION)]
    if name == "me_recipient":
        return [(_headers(None), _body(query, {"id": rng.randint(1, population.recipients)}))
                for _ in range(ROTATION)]
    if name == "recipient_with_doses":
        return [(_headers(None), _body(query, {"id": rng.randint(1, population.recipients)}))
                for _ in range(ROTATION)]
    if name == "center_latest_doses":
        return [(_headers(None), _body(query, {"centerId": rng.randint(1, population.centers)}))
                for _ in range(ROTATION)]
    return [(_headers(None), _body(query, {}))]


def install_peer_helpers(database_url: str) -> None:
    admin(database_url, PEER_SQL)


def preflight(url: str, requests: list[Request]) -> str | None:
    """None when a sample of requests answers with data and no errors, else the reason."""
    for headers, body in requests[:5]:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        try:
            payload = response.json()
        except ValueError:
            return f"HTTP {response.status_code}, not JSON"
        if response.status_code != 200 or payload.get("errors"):
            errors = payload.get("errors") or [{}]
            return f"HTTP {response.status_code}: {str(errors[0].get('message'))[:160]}"
        if not payload.get("data") or all(v is None for v in payload["data"].values()):
            return "answered with no data"
    return None


def _server_reason(log: Path | None) -> str:
    """What the server's own log says about a masked error (e.g. a statement timeout)."""
    if log is None or not log.exists():
        return ""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if "statement timeout" in line:
            return "; server log: statement timeout (VAXVAULT_STATEMENT_TIMEOUT_MS, default 5000)"
    return ""


def measure(side: str, url: str, build: Callable[[str, Population, random.Random], list[Request]],
            population: Population, seconds: int, connections: int,
            log: Path | None = None, queries: tuple[str, ...] = QUERIES,
            threads: int = 2) -> list[QueryResult]:
    """Load each portal query in turn on one server; same seed, so both sides get the same ids."""
    return [measure_one(side, url, name, build, population, seconds, connections, log, threads)
            for name in queries]


def measure_one(side: str, url: str, name: str,
                build: Callable[[str, Population, random.Random], list[Request]],
                population: Population, seconds: int, connections: int,
                log: Path | None = None, threads: int = 2) -> QueryResult:
    requests = build(name, population, random.Random(f"{name}-{population.recipients}"))
    problem = preflight(url, requests)
    if problem is not None:
        problem += _server_reason(log)
        say(f"{side} {name}: unavailable ({problem})")
        return QueryResult(name, side, False, problem)
    load = wrk.run(url, requests, seconds=seconds, threads=threads,
                   connections=min(connections, HEAVY_QUERIES.get(name, connections)))
    say(f"{side} {name}: {load.requests_per_s} req/s, p50 {load.p50_ms} ms, "
        f"p99 {load.p99_ms} ms, bad {load.bad_responses}")
    return QueryResult(name, side, True, load=load)
