"""The role x field x root-field matrix, generated from the policy table.

Every root field is called as every role (allowed or FORBIDDEN); every policy-controlled field
is read as every role that can reach its type (allowed with the stored value, masked, or null
with FORBIDDEN). Adding a row to api/policy.py adds cases here without editing this file.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from api.policy import FIELDS, ROOTS, ROW_SCOPES, Access, RowScope, field_access
from api.principal import Role
from api.schema import schema
from tests.api.client import run
from tests.api.conftest import Cast

# A minimal call of each root field, harmless for every role (mutations fail validation).
ROOT_CALLS: dict[str, str] = {
    "me": "me { role }",
    "districts": "districts { id }",
    "centers": "centers(districtId: \"1\") { id }",
    "vaccines": "vaccines { code }",
    "recipient": "recipient(id: \"{rid}\") { id }",
    "recipients": "recipients(first: 1) { edges { node { id } } }",
    "doses": "doses(first: 1) { edges { node { id } } }",
    "dosesDue": "dosesDue(from: \"2021-09-01\", to: \"2021-09-30\") { dueOn }",
    "coverage": "coverage(groupBy: [DISTRICT]) { doses }",
    "auditLog": "auditLog(first: 1) { edges { node { id } } }",
    "registerRecipient": "registerRecipient(input: {nationalId: \"12\", fullName: \"X\", "
                         "birthDate: \"1990-01-01\", sex: \"female\", districtId: \"1\", "
                         "centerId: \"{cid}\"}) { __typename }",
    "recordDose": "recordDose(input: {recipientId: \"{rid}\", vaccine: \"NOPE\", lotNumber: "
                  "\"L1\", administeredOn: \"2021-09-01\", centerId: \"{cid}\"}) { __typename }",
    "correctDose": "correctDose(input: {doseId: \"1\", reason: \"\"}) { __typename }",
    "setPrivacyFreeze": "setPrivacyFreeze(scope: NATIONAL, reason: \"\") { __typename }",
    # No backup repository in these settings: the admin operations answer "not configured".
    "backups": "backups { configured }",
    "startBackup": "startBackup(kind: INCREMENTAL) { __typename }",
    "verifyBackups": "verifyBackups { __typename }",
    "planRestore": "planRestore(input: {asOf: \"2021-01-01T00:00:00Z\", table: DOSES}) "
                   "{ __typename }",
    "restoreRecords": "restoreRecords(input: {asOf: \"2021-01-01T00:00:00Z\", table: DOSES}) "
                      "{ __typename }",
    "restoreJob": "restoreJob(id: \"1\") { id }",
    "findLoss": "findLoss(table: DOSES) { __typename }",
    "privacyFreezes": "privacyFreezes { active }",
}
MUTATIONS = {"registerRecipient", "recordDose", "correctDose", "setPrivacyFreeze", "startBackup",
             "verifyBackups", "restoreRecords"}
# Roots that look up one row by id: a role granted them reaches the lookup (NOT_FOUND, not
# FORBIDDEN) when the row does not exist.
LOOKUPS = {"restoreJob"}
# Sub-selections for object-typed fields.
SUBSELECT = {"district": "{ id }", "doses": "{ id }", "accessLog": "{ at }",
             "vaccine": "{ code }", "center": "{ id }", "recipient": "{ id }"}


def _schema_roots() -> set[str]:
    gql = schema._schema
    roots = set(gql.query_type.fields) if gql.query_type else set()
    if gql.mutation_type:
        roots |= set(gql.mutation_type.fields)
    return roots


def test_every_root_and_guarded_field_is_in_the_policy_table() -> None:
    roots = _schema_roots()
    assert roots <= set(ROOTS), f"roots missing from api.policy.ROOTS: {roots - set(ROOTS)}"
    assert set(ROOT_CALLS) == roots
    for type_name in ("Recipient", "Dose"):
        fields = set(schema._schema.type_map[type_name].fields)  # type: ignore[attr-defined]
        assert fields == {f for t, f in FIELDS if t == type_name}
    for type_name, field in FIELDS:
        assert field in schema._schema.type_map[type_name].fields  # type: ignore[attr-defined]


def _selection(type_name: str) -> str:
    return " ".join(f"{f} {SUBSELECT.get(f, '')}" for t, f in FIELDS if t == type_name)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_root_fields_follow_the_policy(role: Role, pool: asyncpg.Pool, seeded_settings: Any,
                                             cast: Cast) -> None:
    principal = cast.of(role)
    for root, call in ROOT_CALLS.items():
        text = call.replace("{rid}", str(cast.recipient_id)).replace("{cid}", str(cast.center_id))
        kind = "mutation" if root in MUTATIONS else "query"
        result = await run(pool, seeded_settings, principal, f"{kind} {{ {text} }}")
        codes = result.codes()
        if role in ROOTS[root] and root in LOOKUPS:
            assert codes == {root: "NOT_FOUND"}, (root, result.errors)
        elif role in ROOTS[root]:
            assert codes.get(root) != "FORBIDDEN", (root, result.errors)
            assert not result.errors, (root, result.errors)
            assert result.data and result.data[root] is not None, root
        else:
            assert result.data == {root: None} or result.data is None, root
            assert codes == {root: "FORBIDDEN"}, (root, result.errors)


def _expected(role: Role, type_name: str, field: str, row: Any) -> tuple[str, Any]:
    access = field_access(type_name, field, role)
    if access is Access.DENY:
        return "deny", None
    if access is Access.MASK:
        return "mask", row["masked"]
    return "allow", row.get(field)


# Each Dose field as the database holds it, in the API's shape; the masked national id as
# PostgreSQL computes it, so no expected value comes from the code under test.
DOSE_ROW = """SELECT d.id::text AS id, d.dose_number AS "doseNumber",
    jsonb_build_object('code', d.vaccine_code) AS vaccine, d.lot_number AS "lotNumber",
    d.administered_on::text AS "administeredOn", jsonb_build_object('id', d.center_id::text) AS center,
    d.next_due_on::text AS "nextDueOn", jsonb_build_object('id', d.recipient_id::text) AS recipient
FROM doses d WHERE d.id = $1"""


@pytest.mark.parametrize("role", [r for r in Role if ROW_SCOPES[r].recipients is not RowScope.NONE],
                         ids=lambda r: r.value)
async def test_recipient_and_dose_fields_follow_the_policy(
        role: Role, pool: asyncpg.Pool, seeded_settings: Any, cast: Cast,
        owner: asyncpg.Connection) -> None:
    query = (f"{{ recipients(first: 5) {{ edges {{ node {{ {_selection('Recipient')} }} }} }} "
             f"doses(first: 5) {{ edges {{ node {{ {_selection('Dose')} }} }} }} }}")
    result = await run(pool, seeded_settings, cast.of(role), query)
    codes = result.codes()
    assert result.data is not None
    people = result.data["recipients"]["edges"]
    assert people, "the matrix needs rows in scope"
    for i, edge in enumerate(people):
        node = edge["node"]
        row = await owner.fetchrow("SELECT national_id AS \"nationalId\", full_name AS \"fullName\","
                                   " phone, birth_date::text AS \"birthDate\", sex, repeat('*', "
                                   "length(national_id) - 4) || right(national_id, 4) AS masked "
                                   "FROM recipients WHERE id = $1::bigint", int(node["id"]))
        for type_name, field in FIELDS:
            if type_name != "Recipient":
                continue
            path = f"recipients.edges.{i}.node.{field}"
            verdict, value = _expected(role, type_name, field, row)
            if verdict == "deny":
                assert node[field] is None and codes.get(path) == "FORBIDDEN", path
            else:
                assert path not in codes, (path, result.errors)
                if field in row:
                    assert node[field] == value, path
    doses = result.data["doses"]["edges"]
    assert doses, "the matrix needs doses in scope"
    for i, edge in enumerate(doses):
        stored = dict(await owner.fetchrow(DOSE_ROW, int(edge["node"]["id"])))
        for key in ("vaccine", "center", "recipient"):
            stored[key] = json.loads(stored[key])
        for type_name, field in FIELDS:
            if type_name != "Dose":
                continue
            path = f"doses.edges.{i}.node.{field}"
            if field_access(type_name, field, role) is Access.DENY:
                assert edge["node"][field] is None and codes.get(path) == "FORBIDDEN", path
            else:
                assert path not in codes, path
                assert edge["node"][field] == stored[field], path


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_me_fields_follow_the_policy(role: Role, pool: asyncpg.Pool, seeded_settings: Any,
                                           cast: Cast) -> None:
    result = await run(pool, seeded_settings, cast.of(role),
                       "{ me { role recipient { id } accessLog { at } } }")
    assert result.data is not None
    me = result.data["me"]
    assert me["role"] == role.value
    codes = result.codes()
    for field in ("recipient", "accessLog"):
        if field_access("Me", field, role) is Access.DENY:
            assert me[field] is None and codes[f"me.{field}"] == "FORBIDDEN"
        else:
            assert f"me.{field}" not in codes
    if role is Role.RECIPIENT:
        assert me["recipient"] == {"id": str(cast.recipient_id)}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR], ids=lambda r: r.value)
async def test_audit_detail_is_full_for_admin_and_redacted_for_auditor(
        role: Role, pool: asyncpg.Pool, seeded_settings: Any, cast: Cast) -> None:
    registered = await run(pool, seeded_settings, cast.admin, """mutation {
        registerRecipient(input: {nationalId: "1234567890", fullName: "Rahima Begum",
          birthDate: "1970-05-01", sex: "female", districtId: "1", centerId: "1"}) {
            __typename } }""")
    assert registered.data == {"registerRecipient": {"__typename": "Recipient"}}
    result = await run(pool, seeded_settings, cast.of(role),
                       '{ auditLog(first: 1, filter: {action: "write"}) { edges { node { detail } } } }')
    assert result.data is not None
    after = result.data["auditLog"]["edges"][0]["node"]["detail"]["after"]
    verdict = field_access("AuditEntry", "detail", role)
    if verdict is Access.ALLOW:
        assert (after["full_name"], after["national_id"]) == ("Rahima Begum", "1234567890")
    else:
        assert (after["full_name"], after["national_id"], after["sex"]) == ("***", "***", "female")
