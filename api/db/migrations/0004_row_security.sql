-- Row-level security: the second lock on every personal-data table.
--
-- The API sets its principal at the start of each request's transaction:
--   vaxvault.role, vaxvault.sub, vaxvault.center_id, vaxvault.district_id
-- (set_config(..., true), i.e. SET LOCAL). These policies read those settings, so even a query
-- without a WHERE clause sees only the rows api/policy.py grants that role. The rules mirror
-- api.policy.ROW_SCOPES; tests/api/test_row_security.py holds the two together.

CREATE FUNCTION vaxvault_setting_int(name text) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting(name, true), '')::bigint $$;

-- "Registered for the center, or dosed there". SECURITY DEFINER (runs as the owner, who is not
-- subject to RLS) so the recipients policy can look at doses and the doses policy at recipients
-- without recursing into each other.
CREATE FUNCTION vaxvault_center_sees(recipient bigint, center bigint) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
        SELECT EXISTS (SELECT 1 FROM recipients WHERE id = recipient AND center_id = center)
            OR EXISTS (SELECT 1 FROM doses WHERE recipient_id = recipient AND center_id = center)
    $$;
REVOKE ALL ON FUNCTION vaxvault_center_sees(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vaxvault_center_sees(bigint, bigint) TO vaxvault_api;

CREATE INDEX doses_recipient_center_idx ON doses (recipient_id, center_id);

ALTER TABLE recipients ENABLE ROW LEVEL SECURITY;
ALTER TABLE doses ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY recipients_read ON recipients FOR SELECT TO vaxvault_api USING (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            center_id = vaxvault_setting_int('vaxvault.center_id')
            OR vaxvault_center_sees(id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub')
        ELSE false
    END);

CREATE POLICY recipients_insert ON recipients FOR INSERT TO vaxvault_api WITH CHECK (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
        ELSE false
    END);

CREATE POLICY recipients_update ON recipients FOR UPDATE TO vaxvault_api
    USING (current_setting('vaxvault.role', true) = 'admin')
    WITH CHECK (current_setting('vaxvault.role', true) = 'admin');

CREATE POLICY doses_read ON doses FOR SELECT TO vaxvault_api USING (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            center_id = vaxvault_setting_int('vaxvault.center_id')
            OR vaxvault_center_sees(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN recipient_id = vaxvault_setting_int('vaxvault.sub')
        ELSE false
    END);

-- Staff record and correct doses only at their own center.
CREATE POLICY doses_insert ON doses FOR INSERT TO vaxvault_api WITH CHECK (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
        ELSE false
    END);

CREATE POLICY doses_update ON doses FOR UPDATE TO vaxvault_api
    USING (
        CASE current_setting('vaxvault.role', true)
            WHEN 'admin' THEN true
            WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            ELSE false
        END)
    WITH CHECK (
        CASE current_setting('vaxvault.role', true)
            WHEN 'admin' THEN true
            WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            ELSE false
        END);

-- Anyone may append, but only in their own name; reading is for admin and auditor, and for a
-- recipient the entries about themselves.
CREATE POLICY audit_log_append ON audit_log FOR INSERT TO vaxvault_api WITH CHECK (
    actor_role = current_setting('vaxvault.role', true)
    AND actor_sub IS NOT DISTINCT FROM nullif(current_setting('vaxvault.sub', true), ''));

CREATE POLICY audit_log_read ON audit_log FOR SELECT TO vaxvault_api USING (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'auditor' THEN true
        WHEN 'recipient' THEN recipient_ids @> ARRAY[vaxvault_setting_int('vaxvault.sub')]
        ELSE false
    END);

-- Privacy freezes: national (district_id NULL) or for one district, until a time. Lifting
-- sets lifted_at; rows are never deleted, so the history of freezes is kept.
CREATE TABLE privacy_freezes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id  integer REFERENCES districts (id),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    set_by       text NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now(),
    until        timestamptz NOT NULL,
    lifted_at    timestamptz,
    lifted_by    text
);
CREATE INDEX privacy_freezes_active_idx ON privacy_freezes (until) WHERE lifted_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON privacy_freezes TO vaxvault_api;
ALTER TABLE privacy_freezes ENABLE ROW LEVEL SECURITY;
-- Every request reads the active freezes; only admin may set or lift one.
CREATE POLICY privacy_freezes_read ON privacy_freezes FOR SELECT TO vaxvault_api USING (true);
CREATE POLICY privacy_freezes_insert ON privacy_freezes FOR INSERT TO vaxvault_api
    WITH CHECK (current_setting('vaxvault.role', true) = 'admin');
CREATE POLICY privacy_freezes_update ON privacy_freezes FOR UPDATE TO vaxvault_api
    USING (current_setting('vaxvault.role', true) = 'admin')
    WITH CHECK (current_setting('vaxvault.role', true) = 'admin');

-- Coverage counts for roles that see no dose rows (auditor, district officer, public): an
-- aggregate-only door, scoped by the same settings. It never returns a row identity.
-- Grouping by a dimension not asked for yields NULL for it.
CREATE FUNCTION vaxvault_coverage(
    by_district boolean, by_center boolean, by_day boolean, by_dose_number boolean,
    by_vaccine boolean, only_district integer, only_center integer, day_from date, day_to date,
    only_vaccine text, only_dose_number integer)
RETURNS TABLE (district_id integer, center_id integer, day date, dose_number smallint,
               vaccine_code text, doses bigint, recipients bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
        SELECT CASE WHEN by_district THEN c.district_id END,
               CASE WHEN by_center THEN d.center_id END,
               CASE WHEN by_day THEN d.administered_on END,
               CASE WHEN by_dose_number THEN d.dose_number END,
               CASE WHEN by_vaccine THEN d.vaccine_code END,
               count(*), count(DISTINCT d.recipient_id)
        FROM doses d JOIN centers c ON c.id = d.center_id
        WHERE (only_district IS NULL OR c.district_id = only_district)
          AND (only_center IS NULL OR d.center_id = only_center)
          AND (day_from IS NULL OR d.administered_on >= day_from)
          AND (day_to IS NULL OR d.administered_on <= day_to)
          AND (only_vaccine IS NULL OR d.vaccine_code = only_vaccine)
          AND (only_dose_number IS NULL OR d.dose_number = only_dose_number)
          AND CASE current_setting('vaxvault.role', true)
                WHEN 'admin' THEN true
                WHEN 'auditor' THEN true
                WHEN 'district_officer' THEN
                    c.district_id = vaxvault_setting_int('vaxvault.district_id')
                WHEN 'center_staff' THEN
                    d.center_id = vaxvault_setting_int('vaxvault.center_id')
                WHEN 'public' THEN NOT (by_center OR by_day OR by_dose_number OR by_vaccine)
                                   AND only_center IS NULL
                ELSE false
              END
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
    $$;
REVOKE ALL ON FUNCTION vaxvault_coverage(boolean, boolean, boolean, boolean, boolean, integer,
    integer, date, date, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vaxvault_coverage(boolean, boolean, boolean, boolean, boolean, integer,
    integer, date, date, text, integer) TO vaxvault_api;
