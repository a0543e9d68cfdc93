-- Recovery cases (追回) get a whole lifecycle: requested from the bank, money received in
-- one or more payments, recovered, or the rest written off. `instructed` (a closed
-- payment run carried the `recover` line) becomes `requested`: that line is the request.
ALTER TABLE recovery_cases ADD COLUMN requested_on TEXT;
ALTER TABLE recovery_cases ADD COLUMN requested_by TEXT;
ALTER TABLE recovery_cases ADD COLUMN request_reference TEXT;
ALTER TABLE recovery_cases ADD COLUMN recovered_fen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recovery_cases ADD COLUMN last_payment_on TEXT;
ALTER TABLE recovery_cases ADD COLUMN last_payment_by TEXT;
ALTER TABLE recovery_cases ADD COLUMN written_off_fen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recovery_cases ADD COLUMN write_off_reason TEXT;
ALTER TABLE recovery_cases ADD COLUMN written_off_by TEXT;
ALTER TABLE recovery_cases ADD COLUMN closed_on TEXT;
ALTER TABLE recovery_cases ADD COLUMN updated_at TEXT;

UPDATE recovery_cases SET status = 'requested',
    requested_on = (SELECT substr(p.closed_at, 1, 10) FROM payment_runs p WHERE p.month = recovery_cases.instructed_month)
    WHERE status = 'instructed';
UPDATE recovery_cases SET updated_at = opened_at;
CREATE INDEX recovery_cases_status ON recovery_cases (status, id);

CREATE TABLE recovery_payments (
    id INTEGER PRIMARY KEY,
    recovery_case_id INTEGER NOT NULL REFERENCES recovery_cases (id),
    amount_fen INTEGER NOT NULL,
    received_on TEXT NOT NULL,
    reference TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (recovery_case_id, reference)
);
