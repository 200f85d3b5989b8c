import base64

import pytest

from api.errors import SettingsError
from api.settings import load_settings


def test_defaults_are_development_without_a_database() -> None:
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.database_url is None
    with pytest.raises(SettingsError, match="VAXVAULT_DATABASE_URL is not set"):
        settings.require_database_url()


def test_reads_every_documented_setting() -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    settings = load_settings({
        "VAXVAULT_DATABASE_URL": "postgresql://u:p@db:5432/reg",
        "VAXVAULT_ENV": "production",
        "VAXVAULT_JWT_SECRET": "x" * 40,
        "VAXVAULT_BACKUP_URL": "s3://bucket/prefix",
        "VAXVAULT_BACKUP_REPLICA_URLS": "s3://other/p, file:///mnt/backup",
        "VAXVAULT_BACKUP_SPOOL_DIR": "/var/spool/vaxvault",
        "VAXVAULT_S3_ENDPOINT_URL": "http://minio:9000",
        "VAXVAULT_BACKUP_ENCRYPTION_KEY": key,
    })
    assert settings.production
    assert settings.backup_replica_urls == ("s3://other/p", "file:///mnt/backup")
    assert settings.backup_encryption_key == bytes(range(32))
    assert str(settings.backup_spool_dir) == "/var/spool/vaxvault"
    assert "backup_encryption_key" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VAXVAULT_ENV": "staging"}, "VAXVAULT_ENV='staging' must be one of"),
        ({"VAXVAULT_DATABASE_URL": "mysql://x/y"}, "is not a postgresql:// URL"),
        ({"VAXVAULT_DATABASE_URL": "mysql://u:secret@x/y"}, r"mysql://u:\*\*\*@x/y"),
        ({"VAXVAULT_BACKUP_URL": "ftp://host/x"}, "must be an s3://bucket/prefix or file:///path"),
        ({"VAXVAULT_BACKUP_REPLICA_URLS": "s3://ok,gs://no"}, "VAXVAULT_BACKUP_REPLICA_URLS"),
        ({"VAXVAULT_BACKUP_ENCRYPTION_KEY": "not base64!"}, "is not valid base64"),
        ({"VAXVAULT_BACKUP_ENCRYPTION_KEY": base64.b64encode(b"short").decode()},
         "decodes to 5 bytes; it must be 32"),
        ({"VAXVAULT_ENV": "production"}, "needs VAXVAULT_JWT_SECRET"),
        ({"VAXVAULT_ENV": "production", "VAXVAULT_JWT_SECRET": "short"}, "at least 32"),
        ({"VAXVAULT_POOL_SIZE": "ten"}, "VAXVAULT_POOL_SIZE='ten' is not a whole number"),
        ({"VAXVAULT_STATEMENT_TIMEOUT_MS": "0"}, "must be positive"),
    ],
)
def test_bad_settings_give_one_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(environ)
    assert "\n" not in str(caught.value)


def test_secret_key_never_appears_in_repr() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    settings = load_settings({"VAXVAULT_BACKUP_ENCRYPTION_KEY": key})
    assert "kkkk" not in repr(settings)
