-- Coverage, same contract as 0004, planned per call: the role's scope is decided once (not per
-- row), and only the asked-for dimensions are grouped, so PostgreSQL plans a plain GROUP BY.
-- Coverage by district on 1.77M doses, as auditor: 2.4 s before, 1.5 s with this (psql \timing).
CREATE OR REPLACE FUNCTION vaxvault_coverage(
    by_district boolean, by_center boolean, by_day boolean, by_dose_number boolean,
    by_vaccine boolean, only_district integer, only_center integer, day_from date, day_to date,
    only_vaccine text, only_dose_number integer)
RETURNS TABLE (district_id integer, center_id integer, day date, dose_number smallint,
               vaccine_code text, doses bigint, recipients bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public
    AS $$
DECLARE
    role text := current_setting('vaxvault.role', true);
    scope text;
    filters text[] := ARRAY['true'];
BEGIN
    scope := CASE role
        WHEN 'admin' THEN 'true'
        WHEN 'auditor' THEN 'true'
        WHEN 'district_officer' THEN
            format('c.district_id = %s', coalesce(vaxvault_setting_int('vaxvault.district_id'), -1))
        WHEN 'center_staff' THEN
            format('d.center_id = %s', coalesce(vaxvault_setting_int('vaxvault.center_id'), -1))
        WHEN 'public' THEN
            CASE WHEN by_center OR by_day OR by_dose_number OR by_vaccine OR only_center IS NOT NULL
                 THEN 'false' ELSE 'true' END
        ELSE 'false'
    END;
    IF only_district IS NOT NULL THEN filters := array_append(filters, 'c.district_id = $1'); END IF;
    IF only_center IS NOT NULL THEN filters := array_append(filters, 'd.center_id = $2'); END IF;
    IF day_from IS NOT NULL THEN filters := array_append(filters, 'd.administered_on >= $3'); END IF;
    IF day_to IS NOT NULL THEN filters := array_append(filters, 'd.administered_on <= $4'); END IF;
    IF only_vaccine IS NOT NULL THEN filters := array_append(filters, 'd.vaccine_code = $5'); END IF;
    IF only_dose_number IS NOT NULL THEN filters := array_append(filters, 'd.dose_number = $6'); END IF;
    RETURN QUERY EXECUTE format(
        'SELECT %s::integer, %s::integer, %s::date, %s::smallint, %s::text,
                count(*), count(DISTINCT d.recipient_id)
         FROM doses d JOIN centers c ON c.id = d.center_id
         WHERE %s AND %s
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5',
        CASE WHEN by_district THEN 'c.district_id' ELSE 'NULL' END,
        CASE WHEN by_center THEN 'd.center_id' ELSE 'NULL' END,
        CASE WHEN by_day THEN 'd.administered_on' ELSE 'NULL' END,
        CASE WHEN by_dose_number THEN 'd.dose_number' ELSE 'NULL' END,
        CASE WHEN by_vaccine THEN 'd.vaccine_code' ELSE 'NULL' END,
        scope, array_to_string(filters, ' AND '))
    USING only_district, only_center, day_from, day_to, only_vaccine, only_dose_number;
END $$;
