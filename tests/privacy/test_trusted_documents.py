"""Trusted documents over real HTTP: the portal's manifest runs, other documents do not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from api.errors import SettingsError
from api.settings import Settings
from api.trusted_documents import Manifest, document_hash
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

PORTAL_QUERY = "query Districts { districts { id name } }"
OTHER_QUERY = '{ recipients(filter: {phone: "+8801712345678"}) { edges { node { id } } } }'


def _token(role: str, **claims: Any) -> dict[str, str]:
    token = jwt.encode({"role": role, "exp": int(time.time()) + 600, **claims}, JWT_SECRET,
                       algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


STAFF = _token("center_staff", sub="nurse-1", center_id=1)
ADMIN = _token("admin", sub="admin-1")


def _persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("portal") / "trusted-documents.json"
    path.write_text(json.dumps({document_hash(PORTAL_QUERY): PORTAL_QUERY}))
    return path


def _serve(postgres_url: str, migrated_template: str, state: Path,
           **overrides: Any) -> Iterator[httpx.Client]:
    from tests import harness

    name = harness.unique_name("vvt_trusted")
    url = harness.create_database(postgres_url, name, template=migrated_template)
    settings = replace(Settings(database_url=url, jwt_secret=JWT_SECRET, state_dir=state),
                       **overrides)
    try:
        with live_server(settings) as base, httpx.Client(base_url=base) as http:
            yield http
    finally:
        harness.drop_database(postgres_url, name)


@pytest.fixture(scope="module")
def trusted(postgres_url: str, migrated_template: str, manifest_path: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from _serve(postgres_url, migrated_template, tmp_path_factory.mktemp("state"),
                      trusted_documents=manifest_path, env="production")


@pytest.fixture(scope="module")
def open_dev(postgres_url: str, migrated_template: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from _serve(postgres_url, migrated_template, tmp_path_factory.mktemp("state"))


def _code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def test_a_manifest_document_runs_by_hash_for_any_role_post_or_get(
        trusted: httpx.Client) -> None:
    for headers in ({}, STAFF, ADMIN):
        posted = trusted.post("/graphql", json={"extensions": _persisted(PORTAL_QUERY)},
                              headers=headers)
        assert posted.status_code == 200 and len(posted.json()["data"]["districts"]) == 64
        got = trusted.get("/graphql", params={
            "extensions": json.dumps(_persisted(PORTAL_QUERY))}, headers=headers)
        assert got.status_code == 200 and len(got.json()["data"]["districts"]) == 64
    # The text of a manifest document is the same document.
    as_text = trusted.post("/graphql", json={"query": PORTAL_QUERY}, headers=STAFF)
    assert as_text.status_code == 200 and "data" in as_text.json()


def test_other_documents_are_refused_for_every_role_but_admin(trusted: httpx.Client) -> None:
    for headers in ({}, STAFF, _token("auditor", sub="a-1")):
        refused = trusted.post("/graphql", json={"query": OTHER_QUERY}, headers=headers)
        assert refused.status_code == 400
        assert _code(refused) == "TRUSTED_DOCUMENT_REQUIRED"
        unknown = trusted.post("/graphql", json={"query": OTHER_QUERY,
                                                 "extensions": _persisted(OTHER_QUERY)},
                               headers=headers)
        assert _code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    admin = trusted.post("/graphql", json={"query": OTHER_QUERY}, headers=ADMIN)
    assert admin.status_code == 200 and admin.json()["data"]["recipients"]["edges"] == []


def test_a_hash_that_does_not_match_its_text_is_refused(trusted: httpx.Client) -> None:
    forged = trusted.post("/graphql", json={"query": OTHER_QUERY,
                                            "extensions": _persisted(PORTAL_QUERY)},
                          headers=STAFF)
    assert forged.status_code == 400 and _code(forged) == "BAD_REQUEST"


def test_in_production_a_get_with_query_text_is_refused_even_for_admin(
        trusted: httpx.Client) -> None:
    for query in (OTHER_QUERY, PORTAL_QUERY):
        got = trusted.get("/graphql", params={"query": query}, headers=ADMIN)
        assert got.status_code == 400 and _code(got) == "GET_QUERY_TEXT_REFUSED"


def test_without_a_manifest_post_is_open_get_text_is_not_and_apq_hashes_are_unknown(
        open_dev: httpx.Client) -> None:
    posted = open_dev.post("/graphql", json={"query": "{ districts { id } }"})
    assert posted.status_code == 200 and len(posted.json()["data"]["districts"]) == 64
    got = open_dev.get("/graphql", params={"query": '{ recipients(filter: {phone: "+8801"}) '
                                                    "{ edges { node { id } } } }"})
    assert got.status_code == 400 and _code(got) == "GET_QUERY_TEXT_REFUSED"
    unknown = open_dev.post("/graphql", json={"extensions": _persisted("{ districts { id } }")})
    assert unknown.status_code == 200 and _code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    # APQ's second step: the text with its hash runs (nothing is remembered).
    second = open_dev.post("/graphql", json={"query": "{ districts { id } }",
                                             "extensions": _persisted("{ districts { id } }")})
    assert second.status_code == 200 and "data" in second.json()


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not JSON"),
    (json.dumps(["x"]), "must be a JSON object"),
    (json.dumps({"abc": PORTAL_QUERY}), "is not the sha256 of its document"),
    (json.dumps({document_hash("{ nope"): "{ nope"}), "does not parse"),
])
def test_a_bad_manifest_is_refused_at_start_with_the_reason(tmp_path: Path, content: str,
                                                             message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=message):
        Manifest.load(path)


def test_apollo_manifests_load_too(tmp_path: Path) -> None:
    path = tmp_path / "persisted-query-manifest.json"
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1,
                                "operations": [{"id": document_hash(PORTAL_QUERY),
                                                "name": "Districts", "type": "query",
                                                "body": PORTAL_QUERY}]}))
    assert Manifest.load(path).documents == {document_hash(PORTAL_QUERY): PORTAL_QUERY}
