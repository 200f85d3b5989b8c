-- The compiled read path (api/compiled) gathers, level by level of a nested response, the
-- recipient ids and personal fields it revealed, to write the audit row in the same statement.
-- array_agg cannot concatenate arrays of different lengths; this aggregate can.
CREATE OR REPLACE AGGREGATE array_cat_agg(anycompatiblearray) (
    SFUNC = array_cat,
    STYPE = anycompatiblearray
);
