"""Hand-cut variants of the center's-latest-doses statement (no scope), to see what each part
costs; used by variants.py (role owner: no RLS)."""
import re

BASE = open("bench/lab/stop19-compiled3/center_noscope.sql").read()


def no_audit(sql: str) -> str:
    # per-row ids / f arrays -> NULL, the final audit json -> NULL
    i = sql.index(" AS n0, ") + len(" AS n0, ")
    j = sql.index(" AS f FROM (SELECT d.*")
    sql = sql[:i] + "NULL::bigint[] AS ids, NULL::text[]" + sql[j:]
    k = sql.index(", CASE WHEN cardinality(q.ids)")
    return sql[:k] + ", NULL AS audit, $8::text, $9::text, $10::int, $11::int, $12::text, $13::text FROM q"


def no_pz(sql: str) -> str:
    i = sql.index("FROM (SELECT * FROM (\nSELECT set_config")
    j = sql.index(") pz LEFT JOIN LATERAL")
    return sql[:i] + ("FROM (SELECT $1::text a, $2::text b, $3::text c, $4::text e, NULL::int home_district, "
                      "NULL::int freeze_district, NULL::timestamptz until, NULL::text reason, "
                      "''::text frozen_districts) pz LEFT JOIN LATERAL") + sql[j + len(") pz LEFT JOIN LATERAL"):]


def no_frozen(sql: str) -> str:
    return re.sub(r"CASE WHEN \(pz\.frozen_districts <> '' AND r4\.district_id::text = ANY\(string_to_array\(pz\.frozen_districts, ','\)\)\) THEN [^E]*? ELSE (.*?) END",
                  r"\1", sql)


VARIANTS = {
    "o-base": ("owner", lambda s: BASE),
    "o-noaudit": ("owner", lambda s: no_audit(BASE)),
    "o-nopz": ("owner", lambda s: no_pz(BASE)),
    "o-nofrozen": ("owner", lambda s: no_frozen(BASE)),
    "o-bare": ("owner", lambda s: no_frozen(no_pz(no_audit(BASE)))),
}

COLS = ["id", "national_id", "full_name", "birth_date", "sex", "phone", "district_id",
        "center_id", "registered_at", "updated_at"]


def flat_recipient(sql: str) -> str:
    """The dose's recipient as columns, not as a composite value expanded again."""
    assert "rb AS checked_recipient" in sql
    sql = sql.replace("rb AS checked_recipient",
                      ", ".join(f"rb.{c} AS rb_{c}" for c in COLS))
    return sql.replace("CROSS JOIN LATERAL (SELECT (d1.checked_recipient).*) AS r4",
                       "CROSS JOIN LATERAL (SELECT " + ", ".join(f"d1.rb_{c} AS {c}" for c in COLS)
                       + ") AS r4")


VARIANTS["api-flat"] = ("api", flat_recipient)


def no_audit_any(sql: str) -> str:
    i = sql.index(" AS n0, ") + len(" AS n0, ")
    j = sql.index(" AS f FROM (SELECT d.*")
    sql = sql[:i] + "NULL::bigint[] AS ids, NULL::text[]" + sql[j:]
    k = sql.index(", CASE WHEN cardinality(q.ids)")
    return sql[:k] + ", NULL AS audit, $6::text, $7::text, $8::int, $9::int, $10::text, $11::text FROM q"


VARIANTS["api-noaudit"] = ("api", no_audit_any)


def no_window(sql: str) -> str:
    w = "row_number() OVER (ORDER BY d1.administered_on DESC NULLS FIRST, d1.id DESC) AS rn"
    assert w in sql
    sql = sql.replace(w, "1::bigint AS rn")
    return sql.replace("ORDER BY p.rn)", ")")


VARIANTS["api-nowindow"] = ("api", no_window)
