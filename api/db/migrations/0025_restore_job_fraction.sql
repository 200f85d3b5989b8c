-- How far a restore job has come, 0 to 1: the share of the restore's steps behind it (the
-- console's progress bar). `progress` keeps the step in words.
ALTER TABLE restore_jobs
    ADD COLUMN fraction real NOT NULL DEFAULT 0 CHECK (fraction >= 0 AND fraction <= 1);
