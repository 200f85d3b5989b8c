"""Trusted documents are compiled when the app is built: planned once and kept, and one that
does not validate against the schema stops the start with a sentence."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from api.app import create_app
from api.compiled.compiler import Compiler
from api.errors import SettingsError
from api.schema import schema
from api.settings import Settings
from api.trusted_documents import Manifest, document_hash
from tests.api.conftest import Cast

PORTAL = ("query Recipient($id: ID!) { recipient(id: $id) { id fullName "
          "doses { doseNumber administeredOn } } }")
MUTATION = ('mutation Freeze { setPrivacyFreeze(scope: NATIONAL, until: null, reason: "x") '
            "{ __typename } }")
DISTRICTS = "{ districts { id } }"


def _manifest(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "trusted-documents.json"
    path.write_text(json.dumps({document_hash(d): d for d in documents}))
    return path


def test_a_document_that_does_not_validate_stops_the_start(tmp_path: Path,
                                                           settings: Settings) -> None:
    create_app(replace(settings, trusted_documents=_manifest(tmp_path, PORTAL, MUTATION)))
    bad = '{ recipient(id: "1") { id shoeSize } }'
    path = _manifest(tmp_path, PORTAL, bad)
    with pytest.raises(SettingsError, match=rf"trusted document {document_hash(bad)} is not "
                                            r"valid against this server's schema: .*shoeSize"):
        create_app(replace(settings, trusted_documents=path))


def test_startup_plans_each_document_and_says_which_strawberry_answers(tmp_path: Path) -> None:
    compiler = Compiler(schema, production=True)
    prepared = compiler.prepare(
        Manifest.load(_manifest(tmp_path, PORTAL, MUTATION, DISTRICTS)).documents)
    # The named query is planned under its name and without it (its only operation).
    assert sorted(prepared.compiled) == [f"{document_hash(PORTAL)}:",
                                         f"{document_hash(PORTAL)}:Recipient"]
    assert prepared.strawberry == {document_hash(MUTATION): "a mutation",
                                   document_hash(DISTRICTS): "root districts"}
    assert set(compiler.pinned_documents) == {PORTAL, MUTATION, DISTRICTS}


async def test_a_trusted_document_is_answered_from_its_startup_plan(
        tmp_path: Path, pool: asyncpg.Pool, cast: Cast) -> None:
    compiler = Compiler(schema, production=True)
    compiler.prepare({document_hash(PORTAL): PORTAL})
    plan = compiler.pinned_plans[(PORTAL, "Recipient", ())]
    answer = await compiler.answer(pool, cast.admin, "r-1", PORTAL, "Recipient",
                                   {"id": str(cast.recipient_id)})
    assert answer is not None and answer.operation == "Recipient"
    body: dict[str, Any] = json.loads(answer.body)
    assert body["data"]["recipient"]["id"] == str(cast.recipient_id)
    # Neither parsed nor planned again: the LRU caches stayed empty, the pinned plan served.
    assert not compiler.documents.items and not compiler.plans.items
    assert compiler.plan(PORTAL, "Recipient", {"id": "1"}) is not None
    assert compiler.plan(PORTAL, "Recipient", {"id": "1"})[0] is plan  # type: ignore[index]
