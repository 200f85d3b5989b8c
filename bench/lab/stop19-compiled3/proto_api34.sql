-- Prototypes: vaxvault_center_sees as plpgsql (cached plans per session) for vaxvault_api3,
-- and as SQL without the SET search_path clause (qualified names) for vaxvault_api4.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api3') THEN CREATE ROLE vaxvault_api3 NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api4') THEN CREATE ROLE vaxvault_api4 NOLOGIN NOINHERIT; END IF;
END $$;
GRANT USAGE ON SCHEMA public TO vaxvault_api3, vaxvault_api4;
GRANT SELECT ON districts, centers, vaccines, privacy_freezes TO vaxvault_api3, vaxvault_api4;
GRANT SELECT, INSERT, UPDATE ON recipients, doses TO vaxvault_api3, vaxvault_api4;
GRANT SELECT, INSERT ON audit_log TO vaxvault_api3, vaxvault_api4;
CREATE OR REPLACE FUNCTION proto_sees_plpgsql(recipient bigint, center bigint) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ BEGIN
        RETURN EXISTS (SELECT 1 FROM recipients WHERE id = recipient AND center_id = center)
            OR EXISTS (SELECT 1 FROM doses WHERE recipient_id = recipient AND center_id = center);
    END $$;
CREATE OR REPLACE FUNCTION proto_sees_nopath(recipient bigint, center bigint) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
        SELECT EXISTS (SELECT 1 FROM public.recipients WHERE id OPERATOR(pg_catalog.=) recipient AND center_id OPERATOR(pg_catalog.=) center)
            OR EXISTS (SELECT 1 FROM public.doses WHERE recipient_id OPERATOR(pg_catalog.=) recipient AND center_id OPERATOR(pg_catalog.=) center)
    $$;
DROP POLICY IF EXISTS recipients_read3 ON recipients; DROP POLICY IF EXISTS doses_read3 ON doses;
DROP POLICY IF EXISTS recipients_read4 ON recipients; DROP POLICY IF EXISTS doses_read4 ON doses;
CREATE POLICY recipients_read3 ON recipients FOR SELECT TO vaxvault_api3 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR proto_sees_plpgsql(id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
CREATE POLICY doses_read3 ON doses FOR SELECT TO vaxvault_api3 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR proto_sees_plpgsql(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN recipient_id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
CREATE POLICY recipients_read4 ON recipients FOR SELECT TO vaxvault_api4 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR proto_sees_nopath(id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
CREATE POLICY doses_read4 ON doses FOR SELECT TO vaxvault_api4 USING (
    CASE current_setting('vaxvault.role', true) WHEN 'admin' THEN true
        WHEN 'center_staff' THEN center_id = vaxvault_setting_int('vaxvault.center_id')
            OR proto_sees_nopath(recipient_id, vaxvault_setting_int('vaxvault.center_id'))
        WHEN 'recipient' THEN recipient_id = vaxvault_setting_int('vaxvault.sub') ELSE false END);
