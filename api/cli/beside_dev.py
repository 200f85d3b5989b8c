"""Settings for any command run beside a running `vaxvault dev`: its embedded database and its
file:// repository. Kept apart from dev.py, which every command would otherwise import with the
server, the seed and the migrations (0.14 s of start-up for `vaxvault backup run`)."""

from __future__ import annotations

from api.embedded_postgres import SUPERUSER, running_port
from api.settings import Settings

DATABASE_NAME = "vaxvault"


def beside_dev(settings: Settings) -> Settings:
    """Settings for a command run next to a running `vaxvault dev` (development only): with no
    VAXVAULT_DATABASE_URL, use its embedded database and, with no VAXVAULT_BACKUP_URL, its
    file:// repository, so `vaxvault backup run` works in a second terminal as it is."""
    if settings.production or settings.database_url is not None:
        return settings
    port = running_port(settings.state_dir.absolute() / "postgres" / "data")
    if port is None:
        return settings
    return with_dev_repository(settings.with_overrides(
        database_url=f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE_NAME}"))


def with_dev_repository(settings: Settings) -> Settings:
    if settings.backup_url is not None:
        return settings
    backups = (settings.state_dir / "backups").absolute()
    return settings.with_overrides(backup_url=f"file://{backups}")
