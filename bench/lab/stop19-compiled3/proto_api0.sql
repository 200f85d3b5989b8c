-- The read policies as before migration 0030, for role vaxvault_api0 (A/B after it).
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api0') THEN CREATE ROLE vaxvault_api0 NOLOGIN NOINHERIT; END IF;
END $$;
GRANT USAGE ON SCHEMA public TO vaxvault_api0;
GRANT SELECT ON districts, centers, vaccines, privacy_freezes TO vaxvault_api0;
GRANT SELECT, INSERT, UPDATE ON recipients, doses TO vaxvault_api0;
GRANT SELECT, INSERT ON audit_log TO vaxvault_api0;
GRANT EXECUTE ON FUNCTION vaxvault_center_sees(bigint, bigint) TO vaxvault_api0;
DROP POLICY IF EXISTS recipients_read0 ON recipients; DROP POLICY IF EXISTS doses_read0 ON doses;
CREATE POLICY recipients_read0 ON recipients FOR SELECT TO vaxvault_api0 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR vaxvault_center_sees(id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
CREATE POLICY doses_read0 ON doses FOR SELECT TO vaxvault_api0 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR vaxvault_center_sees(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN recipient_id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
