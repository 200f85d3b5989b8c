from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from api.settings import Settings
from tests.live_server import live_server


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with live_server(settings) as url, httpx.Client(base_url=url) as test_client:
        yield test_client


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    assert ready.headers["x-request-id"]


async def _drop_last_migration(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM vaxvault_migrations WHERE version = "
                           "(SELECT max(version) FROM vaxvault_migrations)")
    finally:
        await conn.close()


def test_readyz_reports_pending_migrations(settings: Settings, client: httpx.Client) -> None:
    import asyncio

    asyncio.run(_drop_last_migration(settings.require_database_url()))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "migrations pending"


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    body = client.get("/metrics").text
    assert 'vaxvault_requests_total{operation="-",path="/healthz",status="200"} 1.0' in body
    assert "vaxvault_request_seconds_bucket" in body


def test_request_id_is_echoed(client: httpx.Client) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers[
        "x-request-id"] == "abc-123"


def test_graphql_serves_reference_data(client: httpx.Client) -> None:
    response = client.post("/graphql", json={"query": "{ districts { id name division } }"})
    assert response.status_code == 200
    districts = response.json()["data"]["districts"]
    assert len(districts) == 64
    assert {"id": "1", "name": "Dhaka", "division": "Dhaka"} in districts


def test_readyz_is_503_when_the_database_is_gone(postgres_url: str, settings: Settings,
                                                 client: httpx.Client) -> None:
    import asyncio

    name = settings.require_database_url().rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database:")


def test_metrics_label_requests_by_route_not_by_raw_path(client: httpx.Client) -> None:
    """Paths nobody routes (scanners, typos) share one label: a label set per raw path would
    grow the registry without bound."""
    for n in range(5):
        assert client.get(f"/wp-admin/probe-{n}.php").status_code == 404
    client.get("/assets/no-such-file.js")
    client.get("/healthz")
    body = client.get("/metrics").text
    assert "probe-" not in body and "no-such-file" not in body
    assert 'vaxvault_requests_total{operation="-",path="other",status="404"} 5.0' in body
    assert 'vaxvault_requests_total{operation="-",path="/assets",status="404"} 1.0' in body
    assert 'vaxvault_requests_total{operation="-",path="/healthz",status="200"} 1.0' in body
