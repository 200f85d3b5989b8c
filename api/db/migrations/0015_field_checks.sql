-- The CHECK of each patterned column, written exactly as api/fields.py's check_sql() gives it,
-- so Python and PostgreSQL validate with one pattern (tests/privacy/test_fields.py compares
-- the two texts and what they accept). The national ID check already had that form.
ALTER TABLE recipients DROP CONSTRAINT recipients_phone_check,
    ADD CONSTRAINT recipients_phone_check CHECK (phone ~ '^(\+8801[3-9][0-9]{8})$');
