-- The GIN on audit_log.recipient_ids collects new entries in a pending list and merges it into
-- the index when it reaches gin_pending_list_limit (4 MB by default), inside whichever INSERT
-- finds it full. Compiled reads commit their audit rows in groups and answer only after the
-- commit (api/compiled/audit_commit.py), so that one merge held up every request of its group:
-- a page of 100 writes 100 ids a row, and INSERTs of six such rows stalled up to 440 ms.
-- A 256 kB list merges sixteen times as often, each merge a sixteenth as long (longest stall
-- 197 ms, INSERTs over 100 ms 9 -> 1 of 3,000), for the same CPU per row
-- (bench/lab/stop19-compiled3/gin_tail.py). fastupdate off cost twice the CPU per row.
ALTER INDEX audit_log_recipients_idx SET (gin_pending_list_limit = 256);
