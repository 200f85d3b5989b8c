-- Prototype: the read policies rewritten (views instead of the SECURITY DEFINER function,
-- settings as InitPlans), for a second role so both can be measured side by side.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api2') THEN
    CREATE ROLE vaxvault_api2 NOLOGIN NOINHERIT;
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO vaxvault_api2;
GRANT SELECT ON districts, centers, vaccines, privacy_freezes TO vaxvault_api2;
GRANT SELECT, INSERT, UPDATE ON recipients, doses TO vaxvault_api2;
GRANT SELECT, INSERT ON audit_log TO vaxvault_api2;
DROP VIEW IF EXISTS proto_center_dosed; DROP VIEW IF EXISTS proto_center_registered;
CREATE VIEW proto_center_dosed AS SELECT d.recipient_id FROM doses d
  WHERE (SELECT current_setting('vaxvault.role', true)) = 'center_staff'
    AND d.center_id = (SELECT vaxvault_setting_int('vaxvault.center_id'));
CREATE VIEW proto_center_registered AS SELECT r.id FROM recipients r
  WHERE (SELECT current_setting('vaxvault.role', true)) = 'center_staff'
    AND r.center_id = (SELECT vaxvault_setting_int('vaxvault.center_id'));
GRANT SELECT ON proto_center_dosed, proto_center_registered TO vaxvault_api2;
DROP POLICY IF EXISTS recipients_read2 ON recipients;
DROP POLICY IF EXISTS doses_read2 ON doses;
CREATE POLICY recipients_read2 ON recipients FOR SELECT TO vaxvault_api2 USING (
    CASE (SELECT current_setting('vaxvault.role', true))
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            recipients.center_id = (SELECT vaxvault_setting_int('vaxvault.center_id'))
            OR EXISTS (SELECT 1 FROM proto_center_dosed v WHERE v.recipient_id = recipients.id)
        WHEN 'recipient' THEN recipients.id = (SELECT vaxvault_setting_int('vaxvault.sub'))
        ELSE false
    END);
CREATE POLICY doses_read2 ON doses FOR SELECT TO vaxvault_api2 USING (
    CASE (SELECT current_setting('vaxvault.role', true))
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            doses.center_id = (SELECT vaxvault_setting_int('vaxvault.center_id'))
            OR EXISTS (SELECT 1 FROM proto_center_registered v WHERE v.id = doses.recipient_id)
            OR EXISTS (SELECT 1 FROM proto_center_dosed v WHERE v.recipient_id = doses.recipient_id)
        WHEN 'recipient' THEN doses.recipient_id = (SELECT vaxvault_setting_int('vaxvault.sub'))
        ELSE false
    END);
