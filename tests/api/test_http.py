"""The API over real HTTP (uvicorn): tokens, limits, masking, introspection by environment."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.auth import mint_token
from api.principal import Role
from api.settings import Settings
from tests.browser import tools as browser_tools
from tests.conftest import JWT_SECRET
from tests.live_server import live_migrated_server, live_server


@pytest.fixture(scope="module")
def api_url(postgres_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[str]:
    with live_migrated_server(postgres_url, migrated_template, tmp_path_factory, "vvt_http") as base:
        yield base


def _post(url: str, query: str, token: str | None = None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/graphql", json={"query": query}, headers=headers, timeout=10,
                      **kwargs)  # type: ignore[arg-type]


FUTURE = int(time.time()) + 3600


@pytest.mark.parametrize("token", [
    jwt.encode({"role": "admin", "sub": "a", "exp": FUTURE}, None, algorithm="none"),
    jwt.encode({"role": "admin", "sub": "a", "exp": FUTURE}, "not-the-secret-" * 3),
    jwt.encode({"role": "admin", "sub": "a", "exp": int(time.time()) - 300}, JWT_SECRET),
    jwt.encode({"role": "admin", "sub": "a"}, JWT_SECRET),
    jwt.encode({"role": "root", "sub": "a", "exp": FUTURE}, JWT_SECRET),
    jwt.encode({"role": "center_staff", "sub": "n", "exp": FUTURE}, JWT_SECRET),
], ids=["alg-none", "bad-signature", "expired", "no-exp", "unknown-role", "staff-no-center"])
def test_bad_tokens_get_401_never_public(api_url: str, token: str) -> None:
    response = _post(api_url, "{ me { role } coverage { doses } }", token)
    assert response.status_code == 401
    assert "data" not in response.json()


def test_a_good_token_and_no_token(api_url: str) -> None:
    token = mint_token(JWT_SECRET, Role.CENTER_STAFF, sub="nurse-9", center_id=3)
    assert _post(api_url, "query Who { me { role centerId } }", token).json() == {
        "data": {"me": {"role": "center_staff", "centerId": "3"}}}
    assert _post(api_url, "{ me { role } }").json() == {"data": {"me": {"role": "public"}}}
    metrics = httpx.get(f"{api_url}/metrics", timeout=10).text
    assert 'operation="Who"' in metrics and 'operation="anonymous"' in metrics


def test_limits_refuse_abusive_queries(api_url: str) -> None:
    token = mint_token(JWT_SECRET, Role.ADMIN, sub="admin-1")
    deep = "{ doses { edges { node { recipient { doses { recipient { doses { recipient { doses " \
           "{ recipient { id } } } } } } } } } } }"
    assert "exceeds maximum operation depth" in _post(api_url, deep, token).json()["errors"][0][
        "message"]
    aliases = "{ " + " ".join(f"a{i}: districts {{ id }}" for i in range(40)) + " }"
    assert "aliases" in _post(api_url, aliases, token).json()["errors"][0]["message"]
    big_first = _post(api_url, "{ recipients(first: 100000) { edges { cursor } } }", token).json()
    assert big_first["data"] == {"recipients": None}
    assert big_first["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "100000" in big_first["errors"][0]["message"]
    huge = _post(api_url, "{ me { role } }" + " " * 70_000, token)
    assert huge.status_code == 413
    tokens = "{ " + "me { role } " * 800 + "}"
    assert "token" in _post(api_url, tokens, token).json()["errors"][0]["message"].lower()


def test_a_forged_cursor_is_a_clear_input_error(api_url: str) -> None:
    token = mint_token(JWT_SECRET, Role.ADMIN, sub="admin-1")
    body = _post(api_url, '{ recipients(after: "bm9wZQ") { edges { cursor } } }', token).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_development_serves_graphiql_and_introspection(api_url: str) -> None:
    browser_tools.graphiql_assets()  # GraphiQL's pinned files, fetched once (skips without npm)
    page = httpx.get(f"{api_url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    body = _post(api_url, "{ __schema { queryType { name } } }").json()
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_production_turns_introspection_off_and_masks_unexpected_errors(
        database_url: str, tmp_path: object) -> None:
    async def break_grant() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("REVOKE SELECT ON vaccines FROM vaxvault_api")
        finally:
            await conn.close()

    asyncio.run(break_grant())
    settings = Settings(database_url=database_url, env="production", jwt_secret=JWT_SECRET,
                        state_dir=tmp_path)  # type: ignore[arg-type]
    with live_server(settings) as url:
        body = _post(url, "{ __schema { queryType { name } } }").json()
        assert "introspection" in body["errors"][0]["message"].lower()
        assert httpx.get(f"{url}/graphql", headers={"Accept": "text/html"},
                         timeout=10).status_code != 200
        # The database refuses the query (a lost grant): an unexpected error, masked.
        failed = _post(url, "{ vaccines { code } districts { id } }").json()
        assert failed["data"]["vaccines"] is None and len(failed["data"]["districts"]) == 64
        assert [e["message"] for e in failed["errors"]] == ["Unexpected error."]
        assert "permission" not in str(failed) and "vaccines" not in failed["errors"][0]["message"]


def test_public_key_tokens_and_the_algorithm_confusion_attack(database_url: str,
                                                              tmp_path: object) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = Settings(database_url=database_url, jwt_public_key=public_pem,
                        jwt_audience="vaxvault", jwt_issuer="https://idp.example",
                        state_dir=tmp_path)  # type: ignore[arg-type]
    claims = {"role": "district_officer", "sub": "d-1", "district_id": 5, "exp": FUTURE,
              "aud": "vaxvault", "iss": "https://idp.example"}
    with live_server(settings) as url:
        good = jwt.encode(claims, key, algorithm="RS256")
        assert _post(url, "{ me { role districtId } }", good).json() == {
            "data": {"me": {"role": "district_officer", "districtId": "5"}}}
        wrong_audience = jwt.encode({**claims, "aud": "other"}, key, algorithm="RS256")
        wrong_issuer = jwt.encode({**claims, "iss": "https://evil.example"}, key, algorithm="RS256")
        # The public key used as an HS256 secret must not verify (algorithm confusion).
        confused = _hs256(claims, public_pem)
        for token in (wrong_audience, wrong_issuer, confused):
            assert _post(url, "{ me { role } }", token).status_code == 401


def _hs256(claims: dict[str, object], secret: str) -> str:
    """An HS256 token signed with `secret` by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"
