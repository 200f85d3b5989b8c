"""Verified tokens are remembered, but never past their expiry or VERIFIED_TTL_S."""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import LEEWAY_S, VERIFIED_TTL_S, TokenVerifier, mint_token
from api.errors import AuthError
from api.principal import Role
from api.settings import Settings
from tests.clock import SteppedClock
from tests.conftest import JWT_SECRET


def _verifier(clock: SteppedClock) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=JWT_SECRET), clock=clock)


def _rotate(verifier: TokenVerifier) -> None:
    """The signing secret changes: a token verified again from now on is refused."""
    verifier._secret = "rotated-" + JWT_SECRET


def test_a_verified_token_is_taken_on_trust_for_a_while_then_checked_again() -> None:
    clock = SteppedClock(time.time())
    verifier = _verifier(clock)
    header = f"Bearer {mint_token(JWT_SECRET, Role.ADMIN, sub='admin-1', ttl_s=3600)}"
    first = verifier.verify(header)
    _rotate(verifier)
    clock.now += VERIFIED_TTL_S - 1
    assert verifier.verify(header) is first
    clock.now += 2
    with pytest.raises(AuthError, match="invalid token"):
        verifier.verify(header)


def test_a_remembered_token_still_expires_at_its_exp() -> None:
    """Expiry by the verifier's clock, the key unchanged: the remembered entry stops at exp
    (plus leeway), and verifying afresh then refuses it as expired, on that same clock."""
    clock = SteppedClock(time.time())
    verifier = _verifier(clock)
    header = f"Bearer {mint_token(JWT_SECRET, Role.ADMIN, sub='admin-1', ttl_s=5)}"
    first = verifier.verify(header)
    clock.now += 5 + LEEWAY_S - 1
    assert verifier.verify(header) is first, "remembered until exp + leeway"
    assert _verifier(clock).verify(header).sub == "admin-1", "and valid afresh too"
    clock.now += 2  # past exp + leeway, well within VERIFIED_TTL_S
    with pytest.raises(AuthError, match="token expired"):
        verifier.verify(header)
    with pytest.raises(AuthError, match="token expired"):
        _verifier(clock).verify(header)


@pytest.mark.parametrize("exp", ["soon", True, None, [1], 10**400])
def test_an_exp_that_is_not_a_number_is_refused(exp: object) -> None:
    token = jwt.encode({"role": "admin", "sub": "admin-1", "exp": exp}, JWT_SECRET)
    with pytest.raises(AuthError, match="exp"):
        _verifier(SteppedClock(time.time())).verify(f"Bearer {token}")


def test_a_refused_token_is_not_remembered() -> None:
    verifier = _verifier(SteppedClock(time.time()))
    header = f"Bearer {mint_token('another-secret-' + JWT_SECRET, Role.ADMIN, sub='admin-1')}"
    for _ in range(2):
        with pytest.raises(AuthError, match="invalid token"):
            verifier.verify(header)
