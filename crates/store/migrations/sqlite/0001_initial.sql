CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE recipients (
    id INTEGER PRIMARY KEY,
    id_bidx BLOB NOT NULL UNIQUE,
    name_bidx BLOB NOT NULL,
    id_number_enc BLOB NOT NULL,
    name_enc BLOB NOT NULL,
    phone_enc BLOB,
    address_enc BLOB,
    bank_account_enc BLOB,
    gender TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    insurance_type TEXT NOT NULL,
    region_code TEXT NOT NULL,
    benefit_start TEXT NOT NULL,
    monthly_amount_fen INTEGER NOT NULL,
    residence TEXT NOT NULL,
    country TEXT,
    last_certified_on TEXT,
    next_due_on TEXT NOT NULL,
    status TEXT NOT NULL,
    suspension_reason TEXT,
    status_changed_on TEXT,
    death_date TEXT,
    death_source TEXT,
    settled_through TEXT,
    settled_after TEXT,
    import_digest BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX recipients_next_due ON recipients (next_due_on);
CREATE INDEX recipients_name ON recipients (name_bidx);
CREATE INDEX recipients_region ON recipients (region_code);

CREATE TABLE certifications (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    channel TEXT NOT NULL,
    certified_on TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    region_code TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    evidence TEXT
);
CREATE INDEX certifications_recipient ON certifications (recipient_id);

CREATE TABLE review_cases (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    certification_id INTEGER REFERENCES certifications (id),
    opened_by TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX review_cases_recipient ON review_cases (recipient_id);

CREATE TABLE recovery_cases (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    months TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    instructed_month TEXT
);
CREATE INDEX recovery_cases_recipient ON recovery_cases (recipient_id);

CREATE TABLE notification_outbox (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    kind TEXT NOT NULL,
    due_on TEXT NOT NULL,
    stage INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (recipient_id, kind, due_on, stage)
);

CREATE TABLE payment_runs (
    month TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    exported_at TEXT NOT NULL,
    closed_at TEXT,
    lines INTEGER NOT NULL,
    total_fen INTEGER NOT NULL
);

CREATE TABLE payment_lines (
    month TEXT NOT NULL REFERENCES payment_runs (month),
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    kind TEXT NOT NULL,
    reason TEXT,
    months TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    PRIMARY KEY (month, recipient_id)
);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    occurred_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    recipient_id INTEGER,
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);

CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000');
