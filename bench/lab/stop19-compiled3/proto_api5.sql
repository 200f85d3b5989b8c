-- Prototype 5: recipients_read looks at the center's doses through a view (inlined, no
-- function call); doses_read unchanged (function). For vaxvault_api5.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api5') THEN CREATE ROLE vaxvault_api5 NOLOGIN NOINHERIT; END IF;
END $$;
GRANT USAGE ON SCHEMA public TO vaxvault_api5;
GRANT SELECT ON districts, centers, vaccines, privacy_freezes TO vaxvault_api5;
GRANT SELECT, INSERT, UPDATE ON recipients, doses TO vaxvault_api5;
GRANT SELECT, INSERT ON audit_log TO vaxvault_api5;
GRANT EXECUTE ON FUNCTION vaxvault_center_sees(bigint, bigint) TO vaxvault_api5;
DROP VIEW IF EXISTS proto_center_dosed5;
CREATE VIEW proto_center_dosed5 AS SELECT d.recipient_id FROM doses d
  WHERE current_setting('vaxvault.role', true) = 'center_staff'
    AND d.center_id = vaxvault_setting_int('vaxvault.center_id');
GRANT SELECT ON proto_center_dosed5 TO vaxvault_api5;
DROP POLICY IF EXISTS recipients_read5 ON recipients; DROP POLICY IF EXISTS doses_read5 ON doses;
CREATE POLICY recipients_read5 ON recipients FOR SELECT TO vaxvault_api5 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR EXISTS (SELECT 1 FROM proto_center_dosed5 v WHERE v.recipient_id = recipients.id)
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
CREATE POLICY doses_read5 ON doses FOR SELECT TO vaxvault_api5 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR vaxvault_center_sees(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN recipient_id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
