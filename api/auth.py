"""Bearer tokens: verification for requests, minting for `vaxvault token`.

A token that is present but bad (malformed, forged, expired, `alg: none`, unknown role, missing
scope claim) raises AuthError, which the HTTP layer answers with 401: never a downgrade to
public. No token at all is the public role.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from api.errors import AuthError, SettingsError
from api.fields import is_id
from api.principal import PUBLIC, Principal, Role
from api.settings import Settings
from api.ttl_cache import TtlCache

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
DEV_SECRET_FILE = "jwt-secret"
LEEWAY_S = 30
# How long a verified token is taken on trust before its signature is checked again.
VERIFIED_TTL_S = 60.0
VERIFIED_MAX = 4096


def development_secret(state_dir: Path) -> str:
    """The secret `vaxvault dev` signs with, created once and kept under the state directory."""
    path = state_dir / DEV_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def signing_secret(settings: Settings) -> str:
    """The HS256 secret to mint tokens with (the configured one, or the dev one)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.production:
        raise SettingsError("VAXVAULT_JWT_SECRET is required to mint tokens in production")
    return development_secret(settings.state_dir)


def mint_token(secret: str, role: Role, *, sub: str | None = None, center_id: int | None = None,
               district_id: int | None = None, ttl_s: int = 3600,
               audience: str | None = None, issuer: str | None = None) -> str:
    claims: dict[str, Any] = {"role": role.value, "exp": int(time.time()) + ttl_s,
                              "iat": int(time.time())}
    if sub is not None:
        claims["sub"] = sub
    if center_id is not None:
        claims["center_id"] = center_id
    if district_id is not None:
        claims["district_id"] = district_id
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    principal_from_claims(claims)  # refuse to mint what we would refuse to accept
    return jwt.encode(claims, secret, algorithm="HS256")


def _int_claim(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    if isinstance(value, str) and is_id(value):
        return int(value)
    raise AuthError(f"token claim {name} must be an integer id (ASCII digits), not {value!r}")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map verified claims to a Principal; raise AuthError when scope claims are missing."""
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise AuthError(f"unknown role {claims.get('role')!r} in token") from exc
    if role is Role.PUBLIC:
        raise AuthError("a token cannot carry the public role; send no token instead")
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise AuthError("token claim sub must be a string")
    principal = Principal(role=role, sub=sub, center_id=_int_claim(claims, "center_id"),
                          district_id=_int_claim(claims, "district_id"))
    if role is Role.CENTER_STAFF and principal.center_id is None:
        raise AuthError("a center_staff token needs a center_id claim")
    if role is Role.DISTRICT_OFFICER and principal.district_id is None:
        raise AuthError("a district_officer token needs a district_id claim")
    if role is Role.RECIPIENT and principal.recipient_id is None:
        raise AuthError("a recipient token needs sub = the recipient's id")
    if role in (Role.ADMIN, Role.AUDITOR) and not sub:
        raise AuthError(f"a {role.value} token needs a sub claim naming the person")
    return principal


@dataclass
class TokenVerifier:
    """Verifies bearer tokens with the configured HS256 secret, public key or JWKS."""

    settings: Settings
    # Wall-clock seconds (tokens' exp is wall time); injected by tests.
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        # Verified tokens -> (principal, exp): a portal sends the same token on every request,
        # and verifying it again cost ~6% of a compiled read. An entry serves only until the
        # token's own expiry and for at most VERIFIED_TTL_S, so a rotated key or a removed
        # JWKS entry takes effect within that long; refusals are never cached.
        self._verified: TtlCache[str, tuple[Principal, float]] = TtlCache(
            ttl_s=VERIFIED_TTL_S, max_entries=VERIFIED_MAX, clock=self.clock)
        self._jwks = jwt.PyJWKClient(self.settings.jwt_jwks_url) if self.settings.jwt_jwks_url \
            else None
        self._secret = self.settings.jwt_secret
        if not (self._secret or self.settings.jwt_public_key or self._jwks):
            self._secret = signing_secret(self.settings)

    def _key_and_algorithms(self, token: str) -> tuple[Any, list[str]]:
        if self._jwks is not None:
            try:
                return self._jwks.get_signing_key_from_jwt(token).key, ASYMMETRIC_ALGORITHMS
            except jwt.PyJWKClientError as exc:
                raise AuthError(f"no signing key for this token: {exc}") from exc
        if self.settings.jwt_public_key:
            return self.settings.jwt_public_key, ASYMMETRIC_ALGORITHMS
        return self._secret, ["HS256"]

    def verify(self, authorization: str | None) -> Principal:
        """Principal for an Authorization header value; PUBLIC when there is none."""
        if authorization is None or authorization.strip() == "":
            return PUBLIC
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        known = self._verified.get(token)
        if known is not None and known[1] > self.clock() - LEEWAY_S:
            return known[0]
        try:
            key, algorithms = self._key_and_algorithms(token)
            claims = jwt.decode(
                token, key, algorithms=algorithms, leeway=LEEWAY_S,
                audience=self.settings.jwt_audience, issuer=self.settings.jwt_issuer,
                # exp is checked below, by self.clock: the same time the cache above keeps.
                options={"require": ["exp", "role"], "verify_exp": False,
                         "verify_aud": bool(self.settings.jwt_audience)},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        exp = claims["exp"]
        if not _seconds(exp):
            raise AuthError(f"invalid token: exp must be a number of seconds, not {str(exp)[:40]!r}")
        if exp <= self.clock() - LEEWAY_S:  # as PyJWT's own check
            raise AuthError("token expired")
        principal = principal_from_claims(claims)
        self._verified.put(token, (principal, float(exp)))
        return principal


def _seconds(value: object) -> bool:
    """Whether a claim is a finite number of seconds (an int too large for a float, say
    10**400 from a faulty issuer, is not: math.isfinite would raise OverflowError, a 500)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
