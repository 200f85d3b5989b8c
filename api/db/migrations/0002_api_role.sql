-- The least-privilege role the API runs as (SET ROLE per connection): it owns nothing, has no
-- DDL, and may only append to the audit log. Roles are cluster-wide, so creating it tolerates
-- another database (or a concurrent migration) having created it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vaxvault_api') THEN
        CREATE ROLE vaxvault_api NOLOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT vaxvault_api TO %I', current_user);
EXCEPTION WHEN duplicate_object OR invalid_grant_operation THEN
    NULL;
END $$;

GRANT USAGE ON SCHEMA public TO vaxvault_api;
GRANT SELECT ON districts, centers, vaccines TO vaxvault_api;
GRANT SELECT, INSERT, UPDATE ON recipients, doses TO vaxvault_api;
GRANT SELECT, INSERT ON audit_log TO vaxvault_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO vaxvault_api;
GRANT SELECT ON vaxvault_migrations TO vaxvault_api;
