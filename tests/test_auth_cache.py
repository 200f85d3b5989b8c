"""Verified tokens are remembered, but never past their expiry or VERIFIED_TTL_S."""

from __future__ import annotations

import time

import pytest

from api.auth import LEEWAY_S, VERIFIED_TTL_S, TokenVerifier, mint_token
from api.errors import AuthError
from api.principal import Role
from api.settings import Settings
from tests.conftest import JWT_SECRET


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _verifier(clock: Clock) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=JWT_SECRET), clock=clock)


def _rotate(verifier: TokenVerifier) -> None:
    """The signing secret changes: a token verified again from now on is refused."""
    verifier._secret = "rotated-" + JWT_SECRET


def test_a_verified_token_is_taken_on_trust_for_a_while_then_checked_again() -> None:
    clock = Clock()
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
    clock = Clock()
    verifier = _verifier(clock)
    header = f"Bearer {mint_token(JWT_SECRET, Role.ADMIN, sub='admin-1', ttl_s=5)}"
    verifier.verify(header)
    _rotate(verifier)
    clock.now += 5 + LEEWAY_S - 1
    assert verifier.verify(header).sub == "admin-1"
    clock.now += 2  # past exp + leeway, well within VERIFIED_TTL_S
    with pytest.raises(AuthError):
        verifier.verify(header)


def test_a_refused_token_is_not_remembered() -> None:
    verifier = _verifier(Clock())
    header = f"Bearer {mint_token('another-secret-' + JWT_SECRET, Role.ADMIN, sub='admin-1')}"
    for _ in range(2):
        with pytest.raises(AuthError, match="invalid token"):
            verifier.verify(header)
