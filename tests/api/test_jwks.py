"""Tokens verified against a JWKS served over real HTTP (ES256), as an identity provider would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from api.auth import TokenVerifier
from api.errors import AuthError
from api.principal import Role
from api.settings import Settings

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(ECAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def _token(key: ec.EllipticCurvePrivateKey, kid: str, **claims: object) -> str:
    body = {"role": "center_staff", "sub": "nurse-3", "center_id": 7,
            "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


def test_a_token_signed_by_a_published_key_is_accepted(jwks_url: str) -> None:
    verifier = TokenVerifier(Settings(jwt_jwks_url=jwks_url))
    principal = verifier.verify(f"Bearer {_token(KEY, 'k1')}")
    assert (principal.role, principal.center_id) == (Role.CENTER_STAFF, 7)


@pytest.mark.parametrize(("key", "kid", "claims", "message"), [
    (OTHER_KEY, "k1", {}, "Signature verification failed"),
    (KEY, "k9", {}, "no signing key"),
    (KEY, "k1", {"center_id": None}, "needs a center_id"),
    (KEY, "k1", {"exp": int(time.time()) - 600}, "expired"),
], ids=["foreign-key", "unknown-kid", "missing-scope", "expired"])
def test_tokens_the_jwks_does_not_vouch_for_are_refused(
        jwks_url: str, key: ec.EllipticCurvePrivateKey, kid: str, claims: dict[str, object],
        message: str) -> None:
    verifier = TokenVerifier(Settings(jwt_jwks_url=jwks_url))
    with pytest.raises(AuthError, match=message):
        verifier.verify(f"Bearer {_token(key, kid, **claims)}")
