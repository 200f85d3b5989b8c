"""GraphQL over HTTP media types and the browser pages' headers, over real HTTP (uvicorn).

The full graphql-http audit suite runs against `vaxvault serve` in tests/browser; these pin the
behaviour that existing application/json clients rely on beside the new media type.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.auth import mint_token
from api.browser import assets
from api.browser.pages import CONTENT_SECURITY_POLICY
from api.graphql_http import GRAPHQL_RESPONSE, JSON, negotiate
from api.principal import Role
from api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.live_server import live_migrated_server, live_server

RESPONSE_TYPE = f"{GRAPHQL_RESPONSE}; charset=utf-8"


@pytest.fixture(scope="module")
def api_url(postgres_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[str]:
    with live_migrated_server(postgres_url, migrated_template, tmp_path_factory, "vvt_media") as base:
        yield base


def _post(url: str, body: object, accept: str | None, token: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize("query", ["{", "{ noSuchField }", "query Q($a: Int!) { me { role } }"])
def test_a_request_error_is_400_without_data_for_the_new_type_and_200_for_json(
        api_url: str, query: str) -> None:
    new = _post(api_url, {"query": query}, GRAPHQL_RESPONSE)
    assert (new.status_code, new.headers["content-type"]) == (400, RESPONSE_TYPE)
    assert "data" not in new.json() and new.json()["errors"]
    legacy = _post(api_url, {"query": query}, JSON)
    assert (legacy.status_code, legacy.headers["content-type"]) == (200, "application/json")
    assert legacy.json()["data"] is None and legacy.json()["errors"] == new.json()["errors"]


def test_variables_that_cannot_be_coerced_are_a_request_error(api_url: str) -> None:
    body = {"query": "query Q($id: ID!) { recipient(id: $id) { id } }", "variables": {"id": []}}
    response = _post(api_url, body, GRAPHQL_RESPONSE)
    assert response.status_code == 400 and "data" not in response.json()


def test_a_field_error_still_executes_and_answers_200_with_data(api_url: str) -> None:
    """A refused root field is a field error (it has a path): the operation ran."""
    response = _post(api_url, {"query": "{ me { role } backups { configured } }"},
                     GRAPHQL_RESPONSE)
    assert (response.status_code, response.headers["content-type"]) == (200, RESPONSE_TYPE)
    body = response.json()
    assert body["data"] == {"me": {"role": "public"}, "backups": None}
    assert body["errors"][0]["path"] == ["backups"]


def test_success_with_either_type_and_no_accept_header(api_url: str) -> None:
    for accept, media in [(GRAPHQL_RESPONSE, RESPONSE_TYPE), (JSON, "application/json"),
                          (None, "application/json"), ("*/*", "application/json"),
                          (f"{JSON};q=0.5, {GRAPHQL_RESPONSE}", RESPONSE_TYPE)]:
        response = _post(api_url, {"query": "{ me { role } }"}, accept)
        assert (response.status_code, response.headers["content-type"]) == (200, media), accept
        assert response.json() == {"data": {"me": {"role": "public"}}}


def test_answers_before_graphql_keep_their_status_in_the_new_type(api_url: str) -> None:
    bad_token = _post(api_url, {"query": "{ me { role } }"}, GRAPHQL_RESPONSE, token="x.y.z")
    assert (bad_token.status_code, bad_token.headers["content-type"]) == (401, RESPONSE_TYPE)
    not_object = httpx.post(f"{api_url}/graphql", content=b"[1]", timeout=10, headers={
        "Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE})
    assert not_object.status_code == 400
    assert not_object.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_an_accept_header_naming_neither_type_is_refused_with_406(api_url: str) -> None:
    response = _post(api_url, {"query": "{ me { role } }"}, "text/plain")
    assert response.status_code == 406
    assert GRAPHQL_RESPONSE in response.json()["errors"][0]["message"]


@given(st.lists(st.tuples(st.sampled_from([GRAPHQL_RESPONSE, JSON, "*/*", "text/plain",
                                           "application/*", "image/png"]),
                          st.sampled_from([None, "0", "0.2", "0.5", "1"])), min_size=1, max_size=5))
def test_negotiation_picks_the_highest_quality_acceptable_type(
        ranges: list[tuple[str, str | None]]) -> None:
    accept = ", ".join(m if q is None else f"{m};q={q}" for m, q in ranges)
    offered = [(GRAPHQL_RESPONSE if m == GRAPHQL_RESPONSE else JSON, float(q or 1))
               for m, q in ranges if m in (GRAPHQL_RESPONSE, JSON, "*/*", "application/*")
               and float(q or 1) > 0]
    chosen = negotiate(accept)
    if not offered:
        assert chosen is None
        return
    best = max(q for _, q in offered)
    assert chosen == next(media for media, q in offered if q == best)


def test_graphiql_and_console_pages_carry_a_strict_csp(api_url: str) -> None:
    for path in ("/console", "/assets/console/main.js", "/assets/graphiql.js"):
        response = httpx.get(f"{api_url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    page = httpx.get(f"{api_url}/console", timeout=10).text
    assert "<script>" not in page and "<script type=\"module\" src=" in page


def test_graphiql_without_its_files_says_how_to_get_them(
        api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "VENDOR_DIR", tmp_path / "no-vendor")
    page = httpx.get(f"{api_url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 503
    assert "make assets" in page.text and "graphiql/graphiql.min.js" in page.text
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_production_serves_no_graphiql(postgres_url: str, migrated_template: str,
                                       tmp_path: Path) -> None:
    from tests import harness

    name = harness.unique_name("vvt_prod")
    url = harness.create_database(postgres_url, name, template=migrated_template)
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET, state_dir=tmp_path,
                        env="production")
    try:
        with live_server(settings) as base:
            page = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}, timeout=10)
            assert page.status_code == 404 and "GraphiQL" not in page.text
            token = mint_token(JWT_SECRET, Role.ADMIN, sub="ops")
            console = httpx.get(f"{base}/console", timeout=10)
            assert console.status_code == 200  # the console asks for a token itself
            assert _post(base, {"query": "{ me { role } }"}, GRAPHQL_RESPONSE,
                         token).json() == {"data": {"me": {"role": "admin"}}}
    finally:
        harness.drop_database(postgres_url, name)
