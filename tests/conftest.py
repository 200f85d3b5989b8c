"""Fixtures: real PostgreSQL databases and a real S3 endpoint, fresh for every test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from api.settings import Settings
from tests import harness

JWT_SECRET = "test-secret-that-is-long-enough-for-production-use"

# boto3 reads credentials from the environment; a test endpoint accepts any.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Superuser URL of the test server (its maintenance database)."""
    # /tmp rather than pytest's tmp dirs: the server runs as another user under root.
    with tempfile.TemporaryDirectory(prefix="vaxvault-test-") as root, \
            harness.postgres_server(Path(root)) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(postgres_url: str) -> Iterator[str]:
    name = harness.create_template(postgres_url, "vvt_migrated", recipients=0)
    yield name
    harness.drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def seeded_template(postgres_url: str) -> Iterator[str]:
    name = harness.create_template(postgres_url, "vvt_seeded", harness.SEEDED_RECIPIENTS)
    yield name
    harness.drop_database(postgres_url, name)


def _clone(postgres_url: str, template: str) -> Iterator[str]:
    name = harness.unique_name("vvt")
    url = harness.create_database(postgres_url, name, template=template)
    yield url
    harness.drop_database(postgres_url, name)


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """A database with nothing in it, not even migrations."""
    name = harness.unique_name("vvt_empty")
    yield harness.create_database(postgres_url, name)
    harness.drop_database(postgres_url, name)


@pytest.fixture
def database_url(postgres_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh migrated database with reference data and no recipients."""
    yield from _clone(postgres_url, migrated_template)


@pytest.fixture
def seeded_database_url(postgres_url: str, seeded_template: str) -> Iterator[str]:
    """A fresh migrated database seeded with harness.SEEDED_RECIPIENTS recipients (seed 7)."""
    yield from _clone(postgres_url, seeded_template)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET, state_dir=tmp_path / "state")


@pytest.fixture
def seeded_settings(seeded_database_url: str, tmp_path: Path) -> Settings:
    # 400 recipients over 64 districts leave almost every count under the default minimum
    # cell of 10, so scope tests read exact counts (min_cell=1); tests/privacy/ sets its own.
    return Settings(database_url=seeded_database_url, jwt_secret=JWT_SECRET,
                    state_dir=tmp_path / "state", min_cell=1)


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    with harness.s3_endpoint() as url:
        yield url


@pytest.fixture
def s3_bucket(s3_endpoint_url: str) -> str:
    """A new, empty bucket on the test S3 endpoint."""
    name = harness.unique_name("vvt").replace("_", "-").lower()
    boto3.client("s3", endpoint_url=s3_endpoint_url).create_bucket(Bucket=name)
    return name
