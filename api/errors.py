"""The API's error tree: every failure the CLI or the HTTP layer reports is one of these."""


class VaxvaultError(Exception):
    """Base of every error vaxvault raises on purpose; its message is meant for an operator."""


class SettingsError(VaxvaultError):
    """A setting is missing or malformed."""


class DatabaseError(VaxvaultError):
    """The database is unreachable or refused an operation."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or no connection is free in time: worth a retry."""

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": "SERVICE_UNAVAILABLE"}


class InvalidText(DatabaseError):
    """A text argument holds a character PostgreSQL cannot store (U+0000): the client's to fix."""

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": "BAD_USER_INPUT"}


class MigrationError(DatabaseError):
    """A migration could not be applied."""


class EmbeddedPostgresError(VaxvaultError):
    """The private PostgreSQL cluster could not be created or started."""


class AuthError(VaxvaultError):
    """A bearer token is malformed, forged, expired or lacks a required claim."""
