"""No log line of the served API contains a national ID or a phone number, whatever the traffic:
reads of personal data, filters by national ID and phone, failed registrations, syntax errors
and GraphQL errors that quote the query.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import httpx

from api.auth import mint_token
from api.principal import Role
from api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.reliability.served import served


async def _people(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT id, national_id, phone, center_id FROM recipients "
                                "WHERE phone IS NOT NULL ORDER BY id LIMIT 25")
    finally:
        await conn.close()


def _traffic(http: httpx.Client, people: list[asyncpg.Record]) -> None:
    admin = {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.ADMIN, sub="log-admin")}
    for person in people:
        staff = {"Authorization": "Bearer " + mint_token(
            JWT_SECRET, Role.CENTER_STAFF, sub="staff-x", center_id=person["center_id"])}
        own = {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.RECIPIENT,
                                                       sub=str(person["id"]))}
        nid, phone = person["national_id"], person["phone"]
        calls: list[tuple[dict[str, str], dict[str, object]]] = [
            (admin, {"query": "query($id: ID!) { recipient(id: $id) { nationalId phone fullName } }",
                     "variables": {"id": str(person["id"])}}),
            (staff, {"query": "query($n: String) { recipients(filter: {nationalId: $n}) "
                              "{ edges { node { nationalId phone } } } }", "variables": {"n": nid}}),
            (admin, {"query": "query($p: String) { recipients(filter: {phone: $p}) "
                              "{ edges { node { id } } } }", "variables": {"p": phone}}),
            (own, {"query": "{ me { recipient { nationalId phone } } }"}),
            # errors that could quote the query text back into a log
            (admin, {"query": f'{{ recipients(filter: {{nationalId: "{nid}", phone: "{phone}"'}),
            (admin, {"query": f'{{ recipient(id: "{nid}") {{ nationalId }} }}'}),
            (admin, {"query": f'{{ nope(x: "{phone}") }}'}),
            # a registration refused as a duplicate names the value in the answer, not the log
            (admin, {"query": """mutation($i: RegisterRecipientInput!) { registerRecipient(input: $i)
                        { __typename } }""",
                     "variables": {"i": {"nationalId": nid, "fullName": "Dup Licate",
                                         "birthDate": "1990-01-01", "sex": "male",
                                         "districtId": "1", "phone": phone, "centerId": "1"}}}),
            (admin, {"query": "query($id: ID!) { recipient(id: $id) { id } }",
                     "variables": {"id": phone}}),
        ]
        for headers, body in calls:
            response = http.post("/graphql", content=json.dumps(body),
                                 headers={**headers, "Content-Type": "application/json"})
            assert response.status_code < 500, response.text[:300]


def test_no_log_line_holds_a_national_id_or_phone(seeded_settings: Settings,
                                                  tmp_path: Path) -> None:
    people = asyncio.run(_people(seeded_settings.require_database_url()))
    assert len(people) == 25
    for env in ("development", "production"):
        log = tmp_path / f"api-{env}.log"
        settings = seeded_settings.with_overrides(env=env)
        with served(settings, log) as api, httpx.Client(base_url=api.url, timeout=30) as http:
            _traffic(http, people)
        text = log.read_text()
        assert text.count("/graphql") >= 25 * 9, "the log did not record the traffic"
        for line in text.splitlines():
            for person in people:
                assert person["national_id"] not in line, line
                assert person["phone"] not in line and person["phone"][4:] not in line, line
