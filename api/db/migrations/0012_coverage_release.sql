-- The national release of counts that counts-only roles read (api/domain/release.py): the
-- grand total, district totals, and district x breakdown tables with their national margins,
-- in one pass. The API suppresses small cells (and their complements) before anyone sees them;
-- this function is the aggregate-only door it reads through, and it never returns a row
-- identity. A recipient has no coverage at all.
CREATE FUNCTION vaxvault_coverage_release()
RETURNS TABLE (breakdown text, district_id integer, value text, doses bigint, recipients bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT CASE
                   WHEN GROUPING(d.center_id) = 0 THEN 'CENTER'
                   WHEN GROUPING(d.vaccine_code) = 0 THEN 'VACCINE'
                   WHEN GROUPING(d.dose_number) = 0 THEN 'DOSE_NUMBER'
                   WHEN GROUPING(m.month) = 0 THEN 'MONTH'
               END,
               CASE WHEN GROUPING(c.district_id) = 0 THEN c.district_id END,
               CASE
                   WHEN GROUPING(d.center_id) = 0 THEN d.center_id::text
                   WHEN GROUPING(d.vaccine_code) = 0 THEN d.vaccine_code
                   WHEN GROUPING(d.dose_number) = 0 THEN d.dose_number::text
                   -- Doses without a date form their own column, which no filter can select.
                   WHEN GROUPING(m.month) = 0 THEN coalesce(m.month::text, '')
               END,
               count(*), count(DISTINCT d.recipient_id)
        FROM doses d
        JOIN centers c ON c.id = d.center_id
        CROSS JOIN LATERAL (SELECT date_trunc('month', d.administered_on)::date AS month) m
        WHERE current_setting('vaxvault.role', true)
              IN ('admin', 'auditor', 'district_officer', 'center_staff', 'public')
        GROUP BY GROUPING SETS ((), (c.district_id), (c.district_id, d.center_id),
                                (c.district_id, d.vaccine_code), (d.vaccine_code),
                                (c.district_id, d.dose_number), (d.dose_number),
                                (c.district_id, m.month), (m.month))
        HAVING count(*) > 0
    $$;
REVOKE ALL ON FUNCTION vaxvault_coverage_release() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vaxvault_coverage_release() TO vaxvault_api;
