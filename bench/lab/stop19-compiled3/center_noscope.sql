WITH q AS (SELECT t6.j AS j0, pz.home_district, pz.freeze_district, pz.until, pz.reason, pz.frozen_districts, coalesce(t6.ids, '{}'::bigint[]) AS ids, coalesce(t6.f, '{}'::text[]) AS f FROM (SELECT * FROM (
SELECT set_config('vaxvault.role', $1, true), set_config('vaxvault.sub', $2, true),
       set_config('vaxvault.center_id', $3, true), set_config('vaxvault.district_id', $4, true),
       home.district_id AS home_district, f.district_id AS freeze_district, f.until, f.reason,
       -- As text, not int[]: an array type costs asyncpg a type-introspection round trip on
       -- each new connection.
       (SELECT coalesce(string_agg(DISTINCT district_id::text, ','), '') FROM privacy_freezes
        WHERE lifted_at IS NULL AND until > now() AND district_id IS NOT NULL)
           AS frozen_districts
FROM (SELECT CASE $1
    WHEN 'center_staff' THEN (SELECT district_id FROM centers WHERE id = nullif($3, '')::int)
    WHEN 'district_officer' THEN nullif($4, '')::int
END AS district_id) home
LEFT JOIN LATERAL (
    SELECT district_id, until, reason FROM privacy_freezes
    WHERE lifted_at IS NULL AND until > now()
      AND (district_id IS NULL OR district_id = home.district_id)
    ORDER BY district_id NULLS FIRST, until DESC LIMIT 1) f ON true
) b OFFSET 0) pz LEFT JOIN LATERAL (SELECT * FROM (SELECT json_build_object('edges', coalesce(json_agg(json_build_object('node', p.n0) ORDER BY p.rn) FILTER (WHERE p.rn <= $7::bigint), '[]'::json)) AS j, array_cat_agg(p.ids) FILTER (WHERE p.rn <= $7::bigint) AS ids, array_cat_agg(p.f) FILTER (WHERE p.rn <= $7::bigint) AS f FROM (SELECT row_number() OVER (ORDER BY d1.administered_on DESC NULLS FIRST, d1.id DESC) AS rn, NULL::bigint AS n, NULL::text AS cur, json_build_object('id', d1.id::text, 'doseNumber', d1.dose_number, 'lotNumber', d1.lot_number, 'administeredOn', to_char(d1.administered_on, 'YYYY-MM-DD'), 'nextDueOn', to_char(d1.next_due_on, 'YYYY-MM-DD'), 'recipient', json_build_object('id', r4.id::text, 'nationalId', CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN json_build_object('!withheld', r4.district_id, '!site', 0) ELSE to_json((repeat('*', greatest(length(r4.national_id) - 4, 0)) || right(r4.national_id, 4))) END, 'fullName', CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN json_build_object('!withheld', r4.district_id, '!site', 1) ELSE to_json(r4.full_name) END)) AS n0, coalesce(coalesce(coalesce(CASE WHEN (CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN NULL ELSE r4.national_id END) IS NOT NULL OR (CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN NULL ELSE r4.full_name END) IS NOT NULL THEN ARRAY[r4.id] ELSE '{}'::bigint[] END, '{}'::bigint[]), '{}'::bigint[]), '{}'::bigint[]) AS ids, coalesce(coalesce(coalesce(array_remove(ARRAY[CASE WHEN (CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN NULL ELSE r4.full_name END) IS NOT NULL THEN 'fullName' END, CASE WHEN (CASE WHEN (pz.frozen_districts <> '' AND r4.district_id::text = ANY(string_to_array(pz.frozen_districts, ','))) THEN NULL ELSE r4.national_id END) IS NOT NULL THEN 'nationalId' END]::text[], NULL), '{}'::text[]), '{}'::text[]), '{}'::text[]) AS f FROM (SELECT d.*, rb AS checked_recipient FROM doses d JOIN recipients rb ON rb.id = d.recipient_id WHERE $5::bigint IS NOT NULL AND d.center_id = $6 ORDER BY d.administered_on DESC NULLS FIRST, d.id DESC LIMIT $7::bigint + 1) AS d1 CROSS JOIN LATERAL (SELECT (d1.checked_recipient).*) AS r4 ) p GROUP BY ()) s WHERE pz.until IS NULL OFFSET 0) AS t6 ON true) SELECT j0::text, home_district, freeze_district, until, reason, frozen_districts, CASE WHEN cardinality(q.ids) > 0 THEN json_build_object(
    'set_role', $1::text, 'set_sub', $2::text, 'sub', $8::text, 'role', $9::text,
    'center', $10::int, 'district', $11::int, 'operation', $12::text,
    'request', $13::text, 'ids', ARRAY(SELECT DISTINCT u FROM unnest(q.ids) u ORDER BY u),
    'fields', ARRAY(SELECT DISTINCT u COLLATE "C" FROM unnest(q.f) u ORDER BY 1))::text
END AS audit FROM q