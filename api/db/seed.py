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

import io
import multiprocessing as mp
import random
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

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
    def __init__(self, rng: random.Random, districts: list[dict], vaccines: list[dict],
                 centers: int) -> None:
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


# Loading fast: the rows are generated in a child process (Python's work, one core) while
# the server parses and stores them (the other core), as COPY text. The tables' indexes and
# key constraints are dropped for the load and built again afterwards, all in the seed's one
# transaction: a sorted build is several times cheaper than maintaining 13 indexes row by row,
# and any failure rolls back to the migrated tables exactly as they were.
# The child saves time only by generating a batch while the server COPYs the one before, so only
# from a second batch on; below that it adds a fork and the pickling of every row (CPU +2-4% at
# 20k-100k, bench/lab/stop19-backupfix/seed_threshold.py).
BACKGROUND_FROM = SEED_BATCH + 1
LOADED_TABLES = ("recipients", "doses")
# Whether a user trigger fires on TRUNCATE of a loaded table (tgtype bit 5: TRUNCATE).
_TRUNCATE_WATCHED = ("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgtype & 32 <> 0 "
                     "AND tgrelid IN (" + ", ".join(f"'{t}'::regclass" for t in LOADED_TABLES) + "))")
_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    return value.translate(_ESCAPES)


def _recipient_line(row: tuple) -> str:
    index, nid, name, birth, sex, phone, district_id, center_id, registered, _ = row
    stamp = registered.isoformat()
    return (f"{index}\t{nid}\t{_text(name)}\t{birth.isoformat()}\t{sex}\t{phone or _NULL}\t"
            f"{district_id}\t{center_id}\t{stamp}\t{stamp}\n")


def _dose_line(row: tuple) -> str:
    dose_id, recipient_id, number, code, lot, day, center_id, due, recorded_by, created, _ = row
    stamp = created.isoformat()
    return (f"{dose_id}\t{recipient_id}\t{number}\t{code}\t{lot}\t{day.isoformat()}\t{center_id}\t"
            f"{due.isoformat() if due else _NULL}\t{recorded_by}\t{stamp}\t{stamp}\n")


@dataclass(frozen=True)
class _Batch:
    recipients: bytes  # COPY text, RECIPIENT_COLUMNS
    doses: bytes  # COPY text, DOSE_COLUMNS
    dose_count: int


def _batches(generator: _Generator, total: int) -> Iterator[_Batch]:
    recipient_lines: list[str] = []
    dose_lines: list[str] = []
    for recipient, doses in generator.rows(total):
        recipient_lines.append(_recipient_line(recipient))
        dose_lines.extend(_dose_line(dose) for dose in doses)
        if len(recipient_lines) == SEED_BATCH:
            yield _Batch("".join(recipient_lines).encode(), "".join(dose_lines).encode(),
                         len(dose_lines))
            recipient_lines, dose_lines = [], []
    if recipient_lines:
        yield _Batch("".join(recipient_lines).encode(), "".join(dose_lines).encode(),
                     len(dose_lines))


def _produce(reader: Connection, writer: Connection, seed_value: int, districts: list[dict],
             vaccines: list[dict], centers: int, total: int) -> None:
    """The child process: centers first, then the batches, then None (or the error's text)."""
    reader.close()  # so a parent that dies leaves this child a broken pipe, not a send that waits
    try:
        generator = _Generator(random.Random(seed_value), districts, vaccines, centers)
        writer.send(generator.centers)
        for batch in _batches(generator, total):
            writer.send(batch)
        writer.send(None)
    except BaseException:  # the parent must learn why, not wait for ever
        writer.send(traceback.format_exc())
        raise


class SeedGeneratorFailed(Exception):
    """The process generating the rows failed or died; the transaction is rolled back."""


def _receive(reader: Connection, process: BaseProcess) -> object:
    """The child's next item. The parent holds no write end of the pipe, so a child that dies,
    even by SIGKILL half-way through sending a batch, ends the pipe: EOF, not a wait for ever."""
    try:
        item = reader.recv()
    except (EOFError, OSError):
        process.join(timeout=5)
        raise SeedGeneratorFailed(
            f"the seed generator exited with code {process.exitcode} before sending everything") from None
    if isinstance(item, str):
        raise SeedGeneratorFailed(f"the seed generator failed:\n{item}")
    return item


@contextmanager
def _generated(seed_value: int, districts: list[dict], vaccines: list[dict], centers: int,
               total: int, background: bool) -> Iterator[tuple[list[tuple], Iterator[_Batch]]]:
    """(centers, batches) from this process, or from a child process running ahead."""
    if not background:
        generator = _Generator(random.Random(seed_value), districts, vaccines, centers)
        yield generator.centers, _batches(generator, total)
        return
    # Fork, not spawn: spawn re-imports the caller's main module, which scripts without a
    # __main__ guard cannot survive. The child touches only the generator and the pipe, never
    # the inherited event loop or socket, and leaves through os._exit (nothing of them closed).
    # A pipe, not a Queue: the parent closes its write end once the child has it, so the child's
    # death, however sudden, is an end of file (a Queue keeps one in the parent: a batch cut off
    # half-sent left the parent reading for ever). The child runs at most one batch ahead, which
    # is enough: generating a batch takes longer than COPYing it.
    context = mp.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_produce, name="vaxvault-seed-generator", daemon=True,
                              args=(reader, writer, seed_value, districts, vaccines, centers, total))
    process.start()
    writer.close()

    def batches() -> Iterator[_Batch]:
        while (batch := _receive(reader, process)) is not None:
            assert isinstance(batch, _Batch)
            yield batch

    try:
        center_rows = _receive(reader, process)
        assert isinstance(center_rows, list)
        yield center_rows, batches()
    finally:
        if process.is_alive():
            process.terminate()
        process.join()
        reader.close()


@dataclass(frozen=True)
class _Deferred:
    """What the load drops and builds again: statements to recreate, in build order."""

    drops: list[str]
    builds: list[str]


async def _defer_keys_and_indexes(conn: asyncpg.Connection) -> _Deferred:
    """Drop the loaded tables' indexes, primary and unique keys and the foreign keys to or from
    them (CHECK and NOT NULL stay: they cost little and check every row as it arrives)."""
    tables = [f"'{table}'::regclass" for table in LOADED_TABLES]
    keys = await conn.fetch(
        f"""SELECT conrelid::regclass::text AS tbl, quote_ident(conname) AS name,
                   pg_get_constraintdef(oid) AS definition,
                   contype = 'f' AS is_foreign
            FROM pg_constraint
            WHERE (contype IN ('p', 'u') AND conrelid IN ({', '.join(tables)}))
               OR (contype = 'f' AND (conrelid IN ({', '.join(tables)})
                                      OR confrelid IN ({', '.join(tables)})))
            ORDER BY contype = 'f' DESC, conrelid, conname""")
    indexes = await conn.fetch(
        f"""SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i
            WHERE i.indrelid IN ({', '.join(tables)})
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                              AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
            ORDER BY name""")
    drops = [f"ALTER TABLE {k['tbl']} DROP CONSTRAINT {k['name']}" for k in keys]
    drops += [f"DROP INDEX {i['name']}" for i in indexes]
    own_keys = [k for k in keys if not k["is_foreign"]]
    foreign = [k for k in keys if k["is_foreign"]]
    builds = [f"ALTER TABLE {k['tbl']} ADD CONSTRAINT {k['name']} {k['definition']}"
              for k in own_keys]
    builds += [i["definition"] for i in indexes]
    builds += [f"ALTER TABLE {k['tbl']} ADD CONSTRAINT {k['name']} {k['definition']}"
               for k in foreign]  # last: they need the referenced keys, and validate in one join
    for statement in drops:
        await conn.execute(statement)
    return _Deferred(drops, builds)


async def seed(conn: asyncpg.Connection, recipients: int, seed_value: int = 1,
               replace: bool = False, background: bool | None = None) -> SeedSummary:
    """Load a synthetic registry of `recipients` people in one transaction.

    Raises SeedConflict when recipients exist and `replace` is false. `background` generates
    the rows in a child process (default: from BACKGROUND_FROM recipients on); the rows are
    the same either way.
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
        districts = [dict(r) for r in await conn.fetch("SELECT id, name FROM districts ORDER BY id")]
        vaccines = [dict(r) for r in await conn.fetch(
            "SELECT code, doses_required, dose_interval_days FROM vaccines")]
        deferred = await _defer_keys_and_indexes(conn)
        # COPY writes the rows frozen (no later VACUUM rewrites every page to freeze them) only
        # into tables emptied in this transaction: --replace did; a fresh seed truncates them
        # (empty already) unless a TRUNCATE trigger watches them, as change capture's does: it
        # would log TRUNCATEs of nothing for every later restore and find-loss to read, so the
        # rows then load unfrozen instead.
        freeze = replace or not await conn.fetchval(_TRUNCATE_WATCHED)
        if freeze and not replace:
            await conn.execute(f"TRUNCATE {', '.join(LOADED_TABLES)}")
        in_background = recipients >= BACKGROUND_FROM if background is None else background
        dose_total = 0
        with _generated(seed_value, districts, vaccines, center_count(recipients), recipients,
                        in_background) as (centers, batches):
            await conn.copy_records_to_table("centers", records=centers,
                                             columns=("id", "name", "district_id"))
            for batch in batches:
                await conn.copy_to_table("recipients", source=io.BytesIO(batch.recipients),
                                         columns=RECIPIENT_COLUMNS, freeze=freeze)
                await conn.copy_to_table("doses", source=io.BytesIO(batch.doses), columns=DOSE_COLUMNS,
                                         freeze=freeze)
                dose_total += batch.dose_count
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in deferred.builds:
            await conn.execute(statement)
        for table in ("recipients", "doses"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
        return SeedSummary(recipients=recipients, doses=dose_total, centers=len(centers))
