-- Who holds a national ID, for the audit only: registerRecipient answers DuplicateNationalId
-- for an ID registered anywhere, which confirms that person exists. The API records that as a
-- read of the holder's nationalId (their me.accessLog shows it) without ever telling center
-- staff where the holder is. SECURITY DEFINER because the holder is usually outside the
-- caller's row scope; it answers only the roles that may register.
CREATE FUNCTION vaxvault_national_id_holder(wanted text) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT id FROM recipients
        WHERE national_id = wanted
          AND current_setting('vaxvault.role', true) IN ('admin', 'center_staff')
    $$;
REVOKE ALL ON FUNCTION vaxvault_national_id_holder(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vaxvault_national_id_holder(text) TO vaxvault_api;
