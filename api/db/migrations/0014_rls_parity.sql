-- Row-level security says everything the Python scope says for writes, not only for reads:
-- center staff record or correct a dose only at their own center AND only for a recipient
-- their center may see (registered there, or dosed there before), as api/domain/vaccination.py
-- checks. With the center check alone, RLS let staff dose anyone and thereby make them readable.
-- vaxvault_center_sees reads the table as of the statement's start, so the new row cannot
-- vouch for itself.
DROP POLICY doses_insert ON doses;
CREATE POLICY doses_insert ON doses FOR INSERT TO vaxvault_api WITH CHECK (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            center_id = vaxvault_setting_int('vaxvault.center_id')
            AND vaxvault_center_sees(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        ELSE false
    END);

DROP POLICY doses_update ON doses;
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
            WHEN 'center_staff' THEN
                center_id = vaxvault_setting_int('vaxvault.center_id')
                AND vaxvault_center_sees(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
            ELSE false
        END);

-- SECURITY DEFINER functions run with the owner's rights: a caller's temporary schema must not
-- be able to shadow a table or function they name, so pg_temp is searched last, explicitly.
ALTER FUNCTION vaxvault_center_sees(bigint, bigint) SET search_path = public, pg_temp;
ALTER FUNCTION vaxvault_coverage(boolean, boolean, boolean, boolean, boolean, integer, integer,
    date, date, text, integer) SET search_path = public, pg_temp;
