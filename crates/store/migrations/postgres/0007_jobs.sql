-- Jobs become a queue that several nodes share: a job is claimed with a lease
-- (`locked_by`, `lease_until`) that its worker extends while it runs, so a job whose node
-- died is claimed again once the lease has run out. A failed attempt is retried after a
-- back-off (`run_after`) until `max_attempts`, then the job is `dead` and listed for
-- staff. Scheduled jobs carry their period (a date for the cycle, a month for the payment
-- export): one row per kind and period, whatever the number of nodes that schedule it.
ALTER TABLE jobs ADD COLUMN period_key TEXT;
ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_attempts BIGINT NOT NULL DEFAULT 5;
ALTER TABLE jobs ADD COLUMN run_after TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
ALTER TABLE jobs ADD COLUMN locked_by TEXT;
ALTER TABLE jobs ADD COLUMN progress_done BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN progress_total BIGINT;
UPDATE jobs SET run_after = created_at;
UPDATE jobs SET attempts = 1 WHERE status IN ('running', 'done', 'failed');
UPDATE jobs SET status = 'dead' WHERE status = 'failed';
UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running';
DROP INDEX jobs_status;
CREATE INDEX jobs_runnable ON jobs (status, run_after, id);
CREATE UNIQUE INDEX jobs_period ON jobs (kind, period_key)
