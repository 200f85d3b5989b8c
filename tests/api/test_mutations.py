"""Writes: union results for expected failures, rules of the dose series, audit with before/after."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import asyncpg

from tests.api.client import run
from tests.api.conftest import Cast

REGISTER = """mutation($input: RegisterRecipientInput!) { registerRecipient(input: $input) {
  __typename ... on Recipient { id nationalId fullName }
  ... on DuplicateNationalId { field value message }
  ... on ValidationFailed { field message } } }"""
RECORD = """mutation($input: RecordDoseInput!) { recordDose(input: $input) {
  __typename ... on Dose { id doseNumber nextDueOn center { id } }
  ... on ValidationFailed { field message } } }"""
CORRECT = """mutation($input: CorrectDoseInput!) { correctDose(input: $input) {
  __typename ... on Dose { id lotNumber administeredOn nextDueOn }
  ... on ValidationFailed { field message } } }"""
PERSON = {"nationalId": "1990123456", "fullName": "Nusrat Jahan", "birthDate": "1990-03-04",
          "sex": "female", "phone": "+8801712345678", "districtId": "1"}


async def test_register_and_the_duplicate_is_a_result_naming_the_field(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    done = await run(pool, seeded_settings, cast.staff, REGISTER, {"input": PERSON})
    assert done.data is not None
    created = done.data["registerRecipient"]
    assert created["__typename"] == "Recipient" and created["nationalId"] == "******3456"
    assert await owner.fetchval("SELECT center_id FROM recipients WHERE id = $1",
                                int(created["id"])) == cast.center_id
    again = await run(pool, seeded_settings, cast.admin, REGISTER,
                      {"input": {**PERSON, "centerId": "1"}})
    assert again.data == {"registerRecipient": {
        "__typename": "DuplicateNationalId", "field": "nationalId", "value": "1990123456",
        "message": again.data["registerRecipient"]["message"]}}
    assert "registered already" in again.data["registerRecipient"]["message"]
    writes = await owner.fetch("SELECT detail FROM audit_log WHERE action = 'write'")
    assert len(writes) == 1
    assert json.loads(writes[0]["detail"])["after"]["full_name"] == "Nusrat Jahan"


async def test_registration_input_is_validated_and_nothing_is_written(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    before = await owner.fetchval("SELECT count(*) FROM recipients")
    cases = [({"nationalId": "12ab"}, "nationalId"), ({"phone": "017"}, "phone"),
             ({"sex": "x"}, "sex"), ({"birthDate": "2999-01-01"}, "birthDate"),
             ({"districtId": "99"}, "districtId"), ({"fullName": "  "}, "fullName"),
             ({"centerId": str(cast.center_id + 1)}, "centerId")]
    for change, field in cases:
        result = await run(pool, seeded_settings, cast.staff, REGISTER,
                           {"input": {**PERSON, **change}})
        assert result.data is not None, result.errors
        assert result.data["registerRecipient"]["field"] == field, change
    assert await owner.fetchval("SELECT count(*) FROM recipients") == before


async def _new_person(pool: asyncpg.Pool, settings: Any, cast: Cast) -> str:
    done = await run(pool, settings, cast.staff, REGISTER, {"input": PERSON})
    assert done.data is not None
    return str(done.data["registerRecipient"]["id"])


async def test_doses_follow_the_series_rules(pool: asyncpg.Pool, seeded_settings: Any,
                                             cast: Cast) -> None:
    person = await _new_person(pool, seeded_settings, cast)
    first = {"recipientId": person, "vaccine": "AZD1222", "lotNumber": "AZ1",
             "administeredOn": "2021-08-07"}
    recorded = await run(pool, seeded_settings, cast.staff, RECORD, {"input": first})
    assert recorded.data == {"recordDose": {
        "__typename": "Dose", "id": recorded.data["recordDose"]["id"], "doseNumber": 1,
        "nextDueOn": "2021-10-02", "center": {"id": str(cast.center_id)}}}
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    refusals = [({"administeredOn": "2021-09-01"}, "administeredOn", "56 days"),
                ({"doseNumber": 3, "administeredOn": "2021-10-05"}, "doseNumber", "next is dose 2"),
                ({"administeredOn": tomorrow}, "administeredOn", "future"),
                ({"vaccine": "NOPE"}, "vaccine", "NOPE"),
                ({"centerId": str(cast.center_id + 1)}, "centerId", "own center"),
                ({"recipientId": "999999"}, "recipientId", "999999")]
    for change, field, words in refusals:
        result = await run(pool, seeded_settings, cast.staff, RECORD, {"input": {**first, **change}})
        assert result.data is not None, result.errors
        refusal = result.data["recordDose"]
        assert (refusal["__typename"], refusal["field"]) == ("ValidationFailed", field), change
        assert words in refusal["message"]
    second = await run(pool, seeded_settings, cast.staff, RECORD,
                       {"input": {**first, "administeredOn": "2021-10-02", "lotNumber": "AZ2"}})
    assert second.data is not None
    assert (second.data["recordDose"]["doseNumber"], second.data["recordDose"]["nextDueOn"]) == (2, None)


async def test_a_correction_needs_a_reason_and_keeps_the_old_values(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    person = await _new_person(pool, seeded_settings, cast)
    recorded = await run(pool, seeded_settings, cast.staff, RECORD, {"input": {
        "recipientId": person, "vaccine": "BNT162B2", "lotNumber": "PF1",
        "administeredOn": "2021-08-07"}})
    assert recorded.data is not None
    dose_id = recorded.data["recordDose"]["id"]
    no_reason = await run(pool, seeded_settings, cast.staff, CORRECT,
                          {"input": {"doseId": dose_id, "reason": " ", "lotNumber": "PF9"}})
    assert no_reason.data is not None and no_reason.data["correctDose"]["field"] == "reason"
    fixed = await run(pool, seeded_settings, cast.staff, CORRECT, {"input": {
        "doseId": dose_id, "reason": "date typed wrong", "administeredOn": "2021-08-09"}})
    assert fixed.data == {"correctDose": {"__typename": "Dose", "id": dose_id, "lotNumber": "PF1",
                                          "administeredOn": "2021-08-09",
                                          "nextDueOn": "2021-08-30"}}
    detail = json.loads(await owner.fetchval(
        "SELECT detail FROM audit_log WHERE detail->>'mutation' = 'correctDose'"))
    assert detail["reason"] == "date typed wrong"
    assert detail["changed"] == ["administered_on", "next_due_on"]
    assert (detail["before"]["administered_on"], detail["after"]["administered_on"]) == (
        "2021-08-07", "2021-08-09")


async def test_staff_cannot_correct_doses_given_elsewhere(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    elsewhere = await owner.fetchval(
        "SELECT d.id FROM doses d JOIN recipients r ON r.id = d.recipient_id "
        "WHERE r.center_id = $1 AND d.center_id <> $1 LIMIT 1", cast.center_id)
    if elsewhere is None:  # every dose of this center's people was given there
        elsewhere = await owner.fetchval("SELECT id FROM doses WHERE center_id <> $1 LIMIT 1",
                                         cast.center_id)
    result = await run(pool, seeded_settings, cast.staff, CORRECT, {"input": {
        "doseId": str(elsewhere), "reason": "x", "lotNumber": "Z"}})
    assert result.data is not None
    assert result.data["correctDose"]["field"] == "doseId"
    assert await owner.fetchval("SELECT lot_number FROM doses WHERE id = $1", elsewhere) != "Z"
