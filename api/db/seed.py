"""A deterministic, realistic synthetic registry, loaded with COPY.

Same ``--recipients`` and ``--seed`` give the same rows, byte for byte, so benchmarks and
acceptance checks can name rows. Shape of the data (Bangladesh, 2021-2022):
- a few thousand centers spread over the 64 districts, weighted towards the big cities;
- national IDs of 10, 13 or 17 digits, unique by construction (an affine permutation);
- about 10% registered but never dosed, 10% dose-1 only, the rest a full primary series and
  some a booster, with every interval at least the vaccine's minimum;
- a large share of first doses on a few mass-campaign days.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate

import asyncpg

from api.db.seed_names import CENTER_KINDS, FAMILY, FEMALE_GIVEN, MALE_GIVEN

FIRST_DAY = date(2021, 2, 7)  # the national roll-out
LAST_DAY = date(2022, 12, 31)
CAMPAIGN_DAYS = (date(2021, 8, 7), date(2021, 10, 13), date(2021, 12, 26), date(2022, 2, 26))
CAMPAIGN_SHARE = 0.3
# Big-city districts register more people; every other district weighs 1.
DISTRICT_WEIGHTS = {"Dhaka": 8, "Chattogram": 4, "Gazipur": 3, "Narayanganj": 2, "Cumilla": 2,
                    "Sylhet": 2, "Rajshahi": 2, "Khulna": 2, "Mymensingh": 2, "Rangpur": 2}
VACCINE_WEIGHTS = {"AZD1222": 25, "BNT162B2": 20, "MRNA1273": 12, "BBIBP": 30, "CORONAVAC": 10,
                   "AD26": 3}
REGISTRY_TABLES = ("doses", "recipients", "centers")
RECIPIENT_COLUMNS = ("id", "national_id", "full_name", "birth_date", "sex", "phone",
                     "district_id", "center_id", "registered_at", "updated_at")
DOSE_COLUMNS = ("id", "recipient_id", "dose_number", "vaccine_code", "lot_number",
                "administered_on", "center_id", "next_due_on", "recorded_by", "created_at",
                "updated_at")
SEED_BATCH = 50_000
NID_SPACES = {10: (10**9, 9 * 10**9), 13: (10**12, 9 * 10**12), 17: (10**16, 9 * 10**16)}


@dataclass(frozen=True)
class SeedSummary:
    recipients: int
    doses: int
    centers: int


class SeedConflict(Exception):
    """The database already holds registry rows and replacing them was not asked for."""


def center_count(recipients: int) -> int:
    return max(128, min(4000, recipients // 250))


def national_id(index: int, total: int) -> str:
    """A unique ID for recipient `index`: 60% 10-digit, 25% 17-digit, 15% 13-digit."""
    length = 10 if index % 20 < 12 else 17 if index % 20 < 17 else 13
    low, span = NID_SPACES[length]
    # Multiplying by a prime coprime to the span permutes it, so distinct inputs stay distinct.
    return str(low + (index * 2_654_435_761 + 97 * total) % span)


class _Generator:
    def __init__(self, rng: random.Random, districts: list[asyncpg.Record],
                 vaccines: list[asyncpg.Record], centers: int) -> None:
        self.rng = rng
        self.vaccines = {row["code"]: row for row in vaccines}
        self.vaccine_codes = list(VACCINE_WEIGHTS)
        self.vaccine_weights = list(VACCINE_WEIGHTS.values())
        self.district_ids = [row["id"] for row in districts]
        self.district_weights = [DISTRICT_WEIGHTS.get(row["name"], 1) for row in districts]
        self.centers: list[tuple[int, str, int]] = []
        self.centers_by_district: dict[int, list[int]] = {d: [] for d in self.district_ids}
        names = {row["id"]: row["name"] for row in districts}
        # Every district gets at least one center; the rest follow the population weights.
        homes = list(self.district_ids) + rng.choices(
            self.district_ids, self.district_weights, k=centers - len(self.district_ids))
        for center_id, district_id in enumerate(sorted(homes), start=1):
            kind = CENTER_KINDS[center_id % len(CENTER_KINDS)]
            number = len(self.centers_by_district[district_id]) + 1
            self.centers.append((center_id, f"{names[district_id]} {kind} {number}", district_id))
            self.centers_by_district[district_id].append(center_id)
        self.days = (LAST_DAY - FIRST_DAY).days

    def first_dose_day(self) -> date:
        if self.rng.random() < CAMPAIGN_SHARE:
            return self.rng.choice(CAMPAIGN_DAYS)
        return FIRST_DAY + timedelta(days=self.rng.randrange(self.days - 200))

    def rows(self, total: int) -> Iterator[tuple[tuple, list[tuple]]]:
        """Yield (recipient row, its dose rows) for recipients 1..total."""
        rng = self.rng
        # Cumulative weights once, not per call: choices() draws exactly as with `weights`
        # (same random() calls, same bisect), so the rows stay byte for byte the same.
        district_cum = list(accumulate(self.district_weights))
        vaccine_cum = list(accumulate(self.vaccine_weights))
        dose_id = 0
        for index in range(1, total + 1):
            district_id = rng.choices(self.district_ids, cum_weights=district_cum)[0]
            center_id = rng.choice(self.centers_by_district[district_id])
            female = rng.random() < 0.49
            given = rng.choice(FEMALE_GIVEN if female else MALE_GIVEN)
            full_name = f"{given} {rng.choice(FAMILY)}"
            birth = date(1935, 1, 1) + timedelta(days=rng.randrange(365 * 75))
            phone = None if rng.random() < 0.04 else (
                f"+8801{rng.choice('3456789')}{rng.randrange(10**8):08d}")
            outcome = rng.random()
            doses_given = 0 if outcome < 0.10 else 1 if outcome < 0.20 else (
                3 if outcome > 0.92 else 2)
            first_day = self.first_dose_day()
            registered = datetime.combine(
                first_day - timedelta(days=rng.randrange(1, 30)),
                time(rng.randrange(7, 22), rng.randrange(60), rng.randrange(60)), UTC)
            recipient = (index, national_id(index, total), full_name, birth,
                         "female" if female else "male", phone, district_id, center_id,
                         registered, registered)
            doses = []
            code = rng.choices(self.vaccine_codes, cum_weights=vaccine_cum)[0]
            vaccine = self.vaccines[code]
            series = vaccine["doses_required"]
            day: date | None = first_day
            dose_center = center_id
            for number in range(1, min(doses_given, series + 1) + 1):
                if day is None or day > LAST_DAY:
                    break
                if number > 1 and rng.random() < 0.15:
                    dose_center = rng.choice(self.centers_by_district[district_id])
                due = (day + timedelta(days=vaccine["dose_interval_days"])
                       if number < series else None)
                # Booster or late-series doses not yet due never get a next_due_on.
                dose_id += 1
                created = datetime.combine(
                    day, time(rng.randrange(8, 18), rng.randrange(60), rng.randrange(60)), UTC)
                doses.append((dose_id, index, number, code,
                              f"{code[:3]}{rng.randrange(10**5):05d}", day, dose_center, due,
                              f"staff-{dose_center}-{rng.randrange(1, 6)}", created, created))
                if due is not None:
                    day = due + timedelta(days=rng.randrange(0, 45))
                else:
                    day = day + timedelta(days=rng.randrange(120, 270))
            yield recipient, doses


async def _copy_batch(conn: asyncpg.Connection, recipients: list[tuple],
                      doses: list[tuple]) -> int:
    if recipients:
        await conn.copy_records_to_table("recipients", records=recipients,
                                         columns=RECIPIENT_COLUMNS)
    if doses:
        await conn.copy_records_to_table("doses", records=doses, columns=DOSE_COLUMNS)
    return len(doses)


async def seed(conn: asyncpg.Connection, recipients: int, seed_value: int = 1,
               replace: bool = False) -> SeedSummary:
    """Load a synthetic registry of `recipients` people in one transaction.

    Raises SeedConflict when recipients exist and `replace` is false.
    """
    if recipients < 0:
        raise ValueError("the number of recipients cannot be negative")
    async with conn.transaction():
        existing = await conn.fetchval("SELECT count(*) FROM (SELECT 1 FROM recipients LIMIT 1) t")
        if existing and not replace:
            raise SeedConflict(
                "the database already holds recipients; pass --replace to discard them")
        if replace:
            await conn.execute(f"TRUNCATE {', '.join(REGISTRY_TABLES)} RESTART IDENTITY CASCADE")
        districts = await conn.fetch("SELECT id, name FROM districts ORDER BY id")
        vaccines = await conn.fetch("SELECT code, doses_required, dose_interval_days FROM vaccines")
        generator = _Generator(random.Random(seed_value), districts, vaccines,
                               center_count(recipients))
        await conn.copy_records_to_table("centers", records=generator.centers,
                                         columns=("id", "name", "district_id"))
        # Recipients and their doses go in alternating batches: memory stays flat however
        # many people are seeded, and each batch of doses finds its recipients already there.
        dose_total = 0
        batch: list[tuple] = []
        dose_batch: list[tuple] = []
        for recipient, doses in generator.rows(recipients):
            batch.append(recipient)
            dose_batch.extend(doses)
            if len(batch) == SEED_BATCH:
                dose_total += await _copy_batch(conn, batch, dose_batch)
                batch, dose_batch = [], []
        dose_total += await _copy_batch(conn, batch, dose_batch)
        for table in ("recipients", "doses"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
        return SeedSummary(recipients=recipients, doses=dose_total,
                           centers=len(generator.centers))
