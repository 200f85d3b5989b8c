"""The role policy, as data: who may call which root field, see which field, and which rows.

This table is the one place access is decided. The resolvers ask `field_access` and
`root_allowed`, the SQL scoping reads `ROW_SCOPES`, the SDL shows `describe_field`, the RLS
migration mirrors `ROW_SCOPES` (a test holds the two together) and the matrix test iterates
over all of it. Adding a field means adding one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from api.principal import Principal, Role


class Access(StrEnum):
    ALLOW = "allow"
    MASK = "mask"
    DENY = "deny"


class RowScope(StrEnum):
    ALL = "all"
    CENTER = "center"        # registered for the principal's center, or dosed there
    DISTRICT = "district"    # doses given in the principal's district (counts only)
    SELF = "self"            # the recipient themselves
    NONE = "none"


A, M = Access.ALLOW, Access.MASK
ADMIN, AUDITOR, OFFICER, STAFF, RECIPIENT, PUBLIC = (
    Role.ADMIN, Role.AUDITOR, Role.DISTRICT_OFFICER, Role.CENTER_STAFF, Role.RECIPIENT, Role.PUBLIC)
EVERYONE = frozenset(Role)

# Fields that identify a person: reading them is audited and a freeze withholds them.
PERSONAL_FIELDS = frozenset({"nationalId", "fullName", "phone", "birthDate"})

_PERSON_READERS = {ADMIN: A, STAFF: A, RECIPIENT: A}
_DOSE_READERS = {ADMIN: A, STAFF: A, RECIPIENT: A}

# Paths that identify a person other than by reading a personal field: each is audited as a
# read of the named fields of the people it identifies, and shows in their `me.accessLog`.
# path -> fields it reveals. Resolvers look their path up here; the privacy tests cover each.
PERSONAL_PATHS: dict[str, frozenset[str]] = {
    # A lookup by a full value confirms it, even when only `id` is selected.
    "recipients(filter.nationalId)": frozenset({"nationalId"}),
    "recipients(filter.phone)": frozenset({"phone"}),
    # "Cannot be registered" confirms the ID is someone's (center staff are not told where).
    "registerRecipient->DuplicateNationalId": frozenset({"nationalId"}),
    # Before/after values of writes and predicates, unredacted (admin).
    "auditLog.detail": PERSONAL_FIELDS,
    # Row values of a restore's diffs (admin over GraphQL, operators on the command line).
    "planRestore.sample": PERSONAL_FIELDS,
    "restoreJob.conflicts": PERSONAL_FIELDS,
    "cli:restore records": PERSONAL_FIELDS,
}
RECIPIENT_LOOKUPS = {"national_id": "recipients(filter.nationalId)",
                     "phone": "recipients(filter.phone)"}

# (GraphQL type, field) -> role -> access. A role not listed is denied.
FIELDS: dict[tuple[str, str], dict[Role, Access]] = {
    ("Recipient", "id"): _PERSON_READERS,
    ("Recipient", "nationalId"): {ADMIN: A, STAFF: M, RECIPIENT: A},
    ("Recipient", "fullName"): _PERSON_READERS,
    ("Recipient", "birthDate"): _PERSON_READERS,
    ("Recipient", "phone"): _PERSON_READERS,
    ("Recipient", "sex"): _PERSON_READERS,
    ("Recipient", "district"): _PERSON_READERS,
    ("Recipient", "registeredAt"): _PERSON_READERS,
    ("Recipient", "doses"): _PERSON_READERS,
    ("Recipient", "accessLog"): {ADMIN: A, RECIPIENT: A},
    ("Dose", "id"): _DOSE_READERS,
    ("Dose", "doseNumber"): _DOSE_READERS,
    ("Dose", "vaccine"): _DOSE_READERS,
    ("Dose", "lotNumber"): _DOSE_READERS,
    ("Dose", "administeredOn"): _DOSE_READERS,
    ("Dose", "center"): _DOSE_READERS,
    ("Dose", "nextDueOn"): _DOSE_READERS,
    ("Dose", "recipient"): _DOSE_READERS,
    ("Me", "accessLog"): {RECIPIENT: A},
    ("Me", "recipient"): {RECIPIENT: A},
    # Before/after values of writes can hold personal data: auditors see them redacted.
    ("AuditEntry", "detail"): {ADMIN: A, AUDITOR: M},
}

# Root field -> roles that may call it. The admin backup operations are listed so the table is
# complete; their resolvers come with the backup work.
ROOTS: dict[str, frozenset[Role]] = {
    "me": EVERYONE,
    "districts": EVERYONE,
    "centers": EVERYONE,
    "vaccines": EVERYONE,
    "recipient": frozenset({ADMIN, STAFF, RECIPIENT}),
    "recipients": frozenset({ADMIN, STAFF, RECIPIENT}),
    "doses": frozenset({ADMIN, STAFF, RECIPIENT}),
    "dosesDue": frozenset({ADMIN, STAFF}),
    "coverage": frozenset({ADMIN, AUDITOR, OFFICER, STAFF, PUBLIC}),
    "auditLog": frozenset({ADMIN, AUDITOR}),
    "registerRecipient": frozenset({ADMIN, STAFF}),
    "recordDose": frozenset({ADMIN, STAFF}),
    "correctDose": frozenset({ADMIN, STAFF}),
    "setPrivacyFreeze": frozenset({ADMIN}),
    "backups": frozenset({ADMIN}),
    "startBackup": frozenset({ADMIN}),
    "verifyBackups": frozenset({ADMIN}),
    "planRestore": frozenset({ADMIN}),
    "findLoss": frozenset({ADMIN}),
    "privacyFreezes": frozenset({ADMIN}),
    "restoreRecords": frozenset({ADMIN}),
    "restoreJob": frozenset({ADMIN}),
}

# Roots that read the state of an operation audited already (a restore job: its start by
# restoreRecords, its outcome by the restore itself): a call is audited only when it reveals
# personal data (PERSONAL_PATHS), so a console polling a running restore leaves no row per poll.
STATUS_ROOTS = frozenset({"restoreJob"})

# While a freeze holds, an affected principal may still call these: counts and reference data.
# Mutations stay open (vaccination goes on) but their results withhold personal fields.
FREEZE_OPEN_ROOTS = frozenset({"me", "districts", "centers", "vaccines", "coverage",
                               "registerRecipient", "recordDose", "correctDose"})
FREEZE_EXEMPT = frozenset({ADMIN, RECIPIENT})


@dataclass(frozen=True)
class Scopes:
    recipients: RowScope
    doses: RowScope
    coverage: RowScope


ROW_SCOPES: dict[Role, Scopes] = {
    ADMIN: Scopes(RowScope.ALL, RowScope.ALL, RowScope.ALL),
    AUDITOR: Scopes(RowScope.NONE, RowScope.NONE, RowScope.ALL),
    OFFICER: Scopes(RowScope.NONE, RowScope.NONE, RowScope.DISTRICT),
    STAFF: Scopes(RowScope.CENTER, RowScope.CENTER, RowScope.CENTER),
    RECIPIENT: Scopes(RowScope.SELF, RowScope.SELF, RowScope.NONE),
    # The public sees national and per-district totals only (see coverage).
    PUBLIC: Scopes(RowScope.NONE, RowScope.NONE, RowScope.ALL),
}
PUBLIC_COVERAGE_DIMENSIONS = frozenset({"DISTRICT"})
# Roles that see counts only, never rows: their coverage comes from the protected release
# (small cells and their complements suppressed), as does everyone's but admin's in a freeze.
COUNTS_ONLY = frozenset({PUBLIC, OFFICER, AUDITOR})


@dataclass(frozen=True)
class Freeze:
    """An active privacy freeze as it applies to this request's principal."""

    district_id: int | None
    until: datetime
    reason: str

    def describe(self) -> str:
        where = "nationally" if self.district_id is None else f"for district {self.district_id}"
        return (f"a privacy freeze holds {where} until {self.until.isoformat()}: "
                "only counts are available")


def withholds_residents(role: Role) -> bool:
    """Whether a district freeze withholds its residents' personal fields from `role`."""
    return role not in FREEZE_EXEMPT


def resident_frozen(role: Role, residence: int | None, frozen_districts: frozenset[int]) -> bool:
    """A district freeze binds its residents' data wherever it is read (admin and the
    recipient themselves excepted), as well as the people who work there."""
    return withholds_residents(role) and residence in frozen_districts


def resident_withheld(type_name: str, field: str, residence: int | None) -> str:
    """Why a personal field of a resident of a frozen district is withheld (resident_frozen)."""
    return (f"{type_name}.{field} is withheld: a privacy freeze holds for district {residence}, "
            "where this person lives")


def field_access(type_name: str, field: str, role: Role, frozen: bool = False) -> Access:
    """What `role` gets for `type_name.field`; a freeze withholds personal fields."""
    access = FIELDS.get((type_name, field), {}).get(role, Access.DENY)
    if frozen and field in PERSONAL_FIELDS and role not in FREEZE_EXEMPT:
        return Access.DENY
    return access


def counts_only(role: Role, frozen: bool) -> bool:
    """Whether `role`'s coverage must be disclosure-controlled (exact only for admin, and for
    center staff about their own center outside a freeze)."""
    return role in COUNTS_ONLY or (frozen and role is not ADMIN)


def root_allowed(root: str, role: Role) -> bool:
    return role in ROOTS.get(root, frozenset())


def freeze_blocks(root: str, role: Role) -> bool:
    """True when an active freeze closes `root` to `role`."""
    return role not in FREEZE_EXEMPT and root not in FREEZE_OPEN_ROOTS


# The district a principal works in, as SQL over the request's parameters ($1 role, $3 center
# claim, $4 district claim): a center's district comes from the database, so an extra
# `district_id` claim on a center_staff token changes nothing; an officer's is their scope.
HOME_DISTRICT_SQL = """CASE $1
    WHEN 'center_staff' THEN (SELECT district_id FROM centers WHERE id = nullif($3, '')::int)
    WHEN 'district_officer' THEN nullif($4, '')::int
END"""


def freeze_applies(principal: Principal, freeze_district: int | None,
                   principal_district: int | None) -> bool:
    """Whether a freeze (national when `freeze_district` is None) covers this principal.

    `principal_district` is the district the principal works in (their own, or their
    center's); roles with no district (auditor) are covered by national freezes only.
    """
    if principal.role in FREEZE_EXEMPT:
        return False
    return freeze_district is None or freeze_district == principal_district


def mask_national_id(value: str) -> str:
    """Every character but the last four replaced by `*`."""
    return "*" * max(len(value) - 4, 0) + value[-4:]


def describe_field(type_name: str, field: str) -> str:
    """Who may see a field, for the SDL: e.g. 'admin: full; center_staff: masked'."""
    grants = FIELDS.get((type_name, field), {})
    words = {Access.ALLOW: "full", Access.MASK: "masked"}
    parts = [f"{role.value}: {words[grants[role]]}" for role in Role if role in grants]
    personal = " Personal data: reads are audited; withheld during a privacy freeze." \
        if field in PERSONAL_FIELDS else ""
    return f"Visible to {'; '.join(parts) or 'nobody'}.{personal}"


def describe_root(root: str) -> str:
    roles = ROOTS.get(root, frozenset())
    names = "everyone" if roles == EVERYONE else ", ".join(r.value for r in Role if r in roles)
    return f"Roles: {names}."
