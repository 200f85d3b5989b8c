import time

import jwt
import pytest

from api.auth import TokenVerifier, mint_token
from api.errors import AuthError
from api.principal import PUBLIC, Role
from api.settings import Settings
from tests.conftest import JWT_SECRET


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=JWT_SECRET))


def test_no_token_is_public(verifier: TokenVerifier) -> None:
    assert verifier.verify(None) is PUBLIC
    assert verifier.verify("") is PUBLIC


def test_valid_token_carries_scope(verifier: TokenVerifier) -> None:
    token = mint_token(JWT_SECRET, Role.CENTER_STAFF, sub="nurse-1", center_id=12)
    principal = verifier.verify(f"Bearer {token}")
    assert (principal.role, principal.sub, principal.center_id) == (Role.CENTER_STAFF, "nurse-1", 12)


def _forge(claims: dict, key: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


FUTURE = int(time.time()) + 3600


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic abc", "must be 'Bearer <token>'"),
        ("Bearer not-a-jwt", "invalid token"),
        (f"Bearer {_forge({'role': 'admin', 'sub': 'a', 'exp': FUTURE}, 'wrong-key-' * 4)}",
         "Signature verification failed"),
        (f"Bearer {_forge({'role': 'admin', 'sub': 'a', 'exp': int(time.time()) - 600})}", "expired"),
        (f"Bearer {_forge({'role': 'admin', 'sub': 'a'})}", "exp"),
        (f"Bearer {jwt.encode({'role': 'admin', 'sub': 'a', 'exp': FUTURE}, None, algorithm='none')}",
         "invalid token"),
        (f"Bearer {_forge({'role': 'superuser', 'sub': 'a', 'exp': FUTURE})}", "unknown role"),
        (f"Bearer {_forge({'role': 'public', 'exp': FUTURE})}", "cannot carry the public role"),
        (f"Bearer {_forge({'role': 'center_staff', 'sub': 'n', 'exp': FUTURE})}", "needs a center_id"),
        (f"Bearer {_forge({'role': 'district_officer', 'sub': 'd', 'exp': FUTURE})}",
         "needs a district_id"),
        (f"Bearer {_forge({'role': 'recipient', 'sub': 'abc', 'exp': FUTURE})}", "recipient's id"),
        (f"Bearer {_forge({'role': 'center_staff', 'sub': 'n', 'center_id': 'x', 'exp': FUTURE})}",
         "center_id must be an integer"),
    ],
)
def test_bad_tokens_are_rejected_never_downgraded(verifier: TokenVerifier, header: str,
                                                  message: str) -> None:
    with pytest.raises(AuthError, match=message):
        verifier.verify(header)


def test_minting_refuses_tokens_we_would_reject() -> None:
    with pytest.raises(AuthError, match="center_id"):
        mint_token(JWT_SECRET, Role.CENTER_STAFF, sub="n")
