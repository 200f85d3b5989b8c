-- Center staff may read a recipient registered elsewhere whom their center dosed. The read
-- policy asked vaxvault_center_sees for that: a SECURITY DEFINER SQL function, so one call per
-- such row (its search_path set and reset each time) and its body planned anew in every
-- transaction; on a center's latest 50 doses that was a fifth of the statement's backend CPU.
-- The same question is now an EXISTS over a view, planned with the statement that reads.
--
-- The view belongs to the tables' owner, whom RLS does not bind, so reading doses through it
-- does not recurse into doses' own policy (which keeps the function: it names recipients).
-- It shows only the recipient ids of doses given at the center the principal works at, and
-- only to center staff: less than such a session reads from doses directly under doses_read.
-- The settings are read once per statement (InitPlans), not per row.
CREATE VIEW vaxvault_center_dosed AS
    SELECT d.recipient_id FROM doses d
    WHERE (SELECT current_setting('vaxvault.role', true)) = 'center_staff'
      AND d.center_id = (SELECT vaxvault_setting_int('vaxvault.center_id'));
REVOKE ALL ON vaxvault_center_dosed FROM PUBLIC;
GRANT SELECT ON vaxvault_center_dosed TO vaxvault_api;

DROP POLICY recipients_read ON recipients;
CREATE POLICY recipients_read ON recipients FOR SELECT TO vaxvault_api USING (
    CASE current_setting('vaxvault.role', true)
        WHEN 'admin' THEN true
        WHEN 'center_staff' THEN
            center_id = vaxvault_setting_int('vaxvault.center_id')
            OR EXISTS (SELECT 1 FROM vaxvault_center_dosed v WHERE v.recipient_id = recipients.id)
        WHEN 'recipient' THEN id = vaxvault_setting_int('vaxvault.sub')
        ELSE false
    END);
