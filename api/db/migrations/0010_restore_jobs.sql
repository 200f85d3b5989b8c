-- Restore jobs started over GraphQL (restoreRecords). The API is stateless and runs as N
-- processes: the job runs in the process that accepted it, and its state lives here so any
-- process can answer restoreJob. The runner writes with the owner's connection (a restore needs
-- owner rights anyway); the API role only reads, and only as admin.
CREATE TABLE restore_jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    progress      text NOT NULL DEFAULT 'queued',
    table_name    text NOT NULL,
    as_of         timestamptz NOT NULL,
    request       jsonb NOT NULL,          -- predicate, columns, on_conflict, with_parents
    requested_by  text,
    request_id    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    -- Renewed every few seconds while the job runs: a job whose process died shows as failed.
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    result        jsonb,                   -- counts and what was written, once succeeded
    error         text
);
CREATE INDEX restore_jobs_created_idx ON restore_jobs (created_at);

GRANT SELECT ON restore_jobs TO vaxvault_api;
ALTER TABLE restore_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY restore_jobs_read ON restore_jobs FOR SELECT TO vaxvault_api
    USING (current_setting('vaxvault.role', true) = 'admin');
