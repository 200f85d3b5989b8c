-- vaxvault_center_dosed (0030) reads doses as their owner, past doses' RLS, and vaxvault_api may
-- select from it. Without security_barrier the planner may push a caller's WHERE clause below
-- the view's own center condition, so a function in that clause (one that raises or logs its
-- argument) would be called on every dose of every center. With the barrier only leakproof
-- conditions (the recipients_read join on recipient_id) move below it.
ALTER VIEW vaxvault_center_dosed SET (security_barrier = true);
