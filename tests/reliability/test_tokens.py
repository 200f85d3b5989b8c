"""Bad bearer tokens over HTTP: every one is a 401, never a downgrade to the public role."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

QUERY = {"query": "{ districts { id } }"}


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "ops-1", "role": "admin", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tampered() -> str:
    """A valid token whose payload was edited after signing (auditor -> admin)."""
    header, _, signature = jwt.encode(_claims(role="auditor"), JWT_SECRET, "HS256").split(".")
    return ".".join([header, _b64(json.dumps(_claims(role="admin")).encode()), signature])


def _unsigned() -> str:
    return ".".join([_b64(b'{"alg":"none","typ":"JWT"}'), _b64(json.dumps(_claims()).encode()), ""])


def _hs512_with_the_right_secret() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test secret is short for SHA-512; that is the point
        return jwt.encode(_claims(), JWT_SECRET, "HS512")


BAD_TOKENS = {
    "tampered claims": _tampered,
    "alg none": _unsigned,
    "wrong key": lambda: jwt.encode(_claims(), "another-secret-that-is-also-long-enough!!", "HS256"),
    "wrong algorithm HS512": lambda: _hs512_with_the_right_secret(),
    "wrong algorithm RS256": lambda: jwt.encode(
        _claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    "wrong algorithm ES256": lambda: jwt.encode(
        _claims(), ec.generate_private_key(ec.SECP256R1()), "ES256"),
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 3600), JWT_SECRET, "HS256"),
    "future nbf": lambda: jwt.encode(_claims(nbf=int(time.time()) + 3600), JWT_SECRET, "HS256"),
    "no exp claim": lambda: jwt.encode(_claims(exp=None), JWT_SECRET, "HS256"),
    "unknown role": lambda: jwt.encode(_claims(role="superuser"), JWT_SECRET, "HS256"),
    "public role": lambda: jwt.encode(_claims(role="public"), JWT_SECRET, "HS256"),
    "center_staff without center": lambda: jwt.encode(_claims(role="center_staff"), JWT_SECRET,
                                                      "HS256"),
    "garbage": lambda: "not.a.token",
    "empty segments": lambda: "..",
}


@pytest.fixture(scope="module")
def client(postgres_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[httpx.Client]:
    from tests import harness

    name = harness.unique_name("vvt_tokens")
    url = harness.create_database(postgres_url, name, template=migrated_template)
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET,
                        state_dir=tmp_path_factory.mktemp("state"))
    try:
        with live_server(settings) as base, httpx.Client(base_url=base) as http:
            yield http
    finally:
        harness.drop_database(postgres_url, name)


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_token_is_401(client: httpx.Client, case: str) -> None:
    response = client.post("/graphql", json=QUERY,
                           headers={"Authorization": f"Bearer {BAD_TOKENS[case]()}"})
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in response.json()


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", "bearer x y"])
def test_malformed_authorization_header_is_401(client: httpx.Client, header: str) -> None:
    response = client.post("/graphql", json=QUERY, headers={"Authorization": header})
    assert response.status_code == 401, response.text


def test_good_token_is_accepted(client: httpx.Client) -> None:
    response = client.post("/graphql", json=QUERY,
                           headers={"Authorization": f"Bearer {jwt.encode(_claims(), JWT_SECRET)}"})
    assert response.status_code == 200
    assert len(response.json()["data"]["districts"]) == 64
