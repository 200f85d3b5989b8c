"""Settings, read once from the environment into a frozen object.

This is the only module that touches ``os.environ``; everything else receives a ``Settings``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from api.errors import SettingsError

ENVIRONMENTS = ("development", "production")
DEFAULT_STATE_DIR = Path(".vaxvault")


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    env: str = "development"
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    backup_url: str | None = None
    backup_replica_urls: tuple[str, ...] = ()
    backup_spool_dir: Path | None = None
    s3_endpoint_url: str | None = None
    backup_encryption_key: bytes | None = field(default=None, repr=False)
    # Cron expressions of `vaxvault backup schedule` (None: its defaults); the API reads them too,
    # to show the next runs in the console.
    backup_schedule_full: str | None = None
    backup_schedule_incremental: str | None = None
    # How `backup init` captures changes: "trigger" or "logical" (needs wal_level=logical);
    # None keeps what is installed (trigger on a new install).
    backup_capture: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    statement_timeout_ms: int = 5000
    pool_max_size: int = 10
    # Counts-only roles never see a coverage cell of 1..min_cell-1 recipients (README).
    min_cell: int = 10
    # Manifest of sha256 -> document: when set, only these run for every role but admin.
    trusted_documents: Path | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError(
                "VAXVAULT_DATABASE_URL is not set; set it to a postgresql:// URL "
                "or use 'vaxvault dev' for the embedded database"
            )
        return self.database_url


def _database_url(value: str | None) -> str | None:
    if not value:
        return None
    scheme = urlsplit(value).scheme
    if scheme not in ("postgres", "postgresql"):
        raise SettingsError(
            f"VAXVAULT_DATABASE_URL={_redact(value)!r} is not a postgresql:// URL"
        )
    return value


def _repository_url(name: str, value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in ("s3", "file"):
        raise SettingsError(f"{name}={value!r} must be an s3://bucket/prefix or file:///path URL")
    return value


def _encryption_key(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SettingsError("VAXVAULT_BACKUP_ENCRYPTION_KEY is not valid base64") from exc
    if len(key) != 32:
        raise SettingsError(
            f"VAXVAULT_BACKUP_ENCRYPTION_KEY decodes to {len(key)} bytes; it must be 32 "
            "(generate one with: head -c32 /dev/urandom | base64)"
        )
    return key


CAPTURE_MODES = ("trigger", "logical")


def _capture_mode(value: str | None) -> str | None:
    if not value:
        return None
    if value not in CAPTURE_MODES:
        raise SettingsError(f"VAXVAULT_BACKUP_CAPTURE={value!r} must be one of {', '.join(CAPTURE_MODES)}")
    return value


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is not a whole number") from exc
    if number <= 0:
        raise SettingsError(f"{name}={value!r} must be positive")
    return number


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every VAXVAULT_* setting; raise SettingsError naming the first bad one."""
    env = os.environ if environ is None else environ
    mode = env.get("VAXVAULT_ENV", "development") or "development"
    if mode not in ENVIRONMENTS:
        raise SettingsError(f"VAXVAULT_ENV={mode!r} must be one of {', '.join(ENVIRONMENTS)}")
    state_dir = Path(env.get("VAXVAULT_STATE_DIR") or DEFAULT_STATE_DIR)
    backup_url = env.get("VAXVAULT_BACKUP_URL") or None
    replicas = tuple(
        _repository_url("VAXVAULT_BACKUP_REPLICA_URLS", url.strip())
        for url in (env.get("VAXVAULT_BACKUP_REPLICA_URLS") or "").split(",")
        if url.strip()
    )
    spool = env.get("VAXVAULT_BACKUP_SPOOL_DIR")
    settings = Settings(
        database_url=_database_url(env.get("VAXVAULT_DATABASE_URL")),
        env=mode,
        jwt_secret=env.get("VAXVAULT_JWT_SECRET") or None,
        jwt_public_key=env.get("VAXVAULT_JWT_PUBLIC_KEY") or None,
        jwt_jwks_url=env.get("VAXVAULT_JWT_JWKS_URL") or None,
        jwt_audience=env.get("VAXVAULT_JWT_AUDIENCE") or None,
        jwt_issuer=env.get("VAXVAULT_JWT_ISSUER") or None,
        backup_url=_repository_url("VAXVAULT_BACKUP_URL", backup_url) if backup_url else None,
        backup_replica_urls=replicas,
        backup_spool_dir=Path(spool) if spool else None,
        s3_endpoint_url=env.get("VAXVAULT_S3_ENDPOINT_URL") or None,
        backup_encryption_key=_encryption_key(env.get("VAXVAULT_BACKUP_ENCRYPTION_KEY")),
        backup_schedule_full=env.get("VAXVAULT_BACKUP_SCHEDULE_FULL") or None,
        backup_schedule_incremental=env.get("VAXVAULT_BACKUP_SCHEDULE_INCREMENTAL") or None,
        backup_capture=_capture_mode(env.get("VAXVAULT_BACKUP_CAPTURE")),
        state_dir=state_dir,
        statement_timeout_ms=_positive_int(
            "VAXVAULT_STATEMENT_TIMEOUT_MS", env.get("VAXVAULT_STATEMENT_TIMEOUT_MS"), 5000
        ),
        pool_max_size=_positive_int("VAXVAULT_POOL_SIZE", env.get("VAXVAULT_POOL_SIZE"), 10),
        min_cell=_positive_int("VAXVAULT_MIN_CELL", env.get("VAXVAULT_MIN_CELL"), 10),
        trusted_documents=Path(env["VAXVAULT_TRUSTED_DOCUMENTS"])
        if env.get("VAXVAULT_TRUSTED_DOCUMENTS") else None,
    )
    if settings.production:
        if not (settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks_url):
            raise SettingsError(
                "VAXVAULT_ENV=production needs VAXVAULT_JWT_SECRET, VAXVAULT_JWT_PUBLIC_KEY "
                "or VAXVAULT_JWT_JWKS_URL"
            )
        if settings.jwt_secret and len(settings.jwt_secret) < 32:
            raise SettingsError("VAXVAULT_JWT_SECRET must be at least 32 characters in production")
    return settings
