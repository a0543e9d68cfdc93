CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    totp_secret_enc BLOB NOT NULL,
    last_totp_step INTEGER NOT NULL,
    role TEXT NOT NULL,
    region_prefix TEXT NOT NULL,
    active INTEGER NOT NULL,
    locked_until TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, failed_at);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash BLOB NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

ALTER TABLE review_cases ADD COLUMN decision TEXT;
ALTER TABLE review_cases ADD COLUMN decision_reason TEXT;
ALTER TABLE review_cases ADD COLUMN decision_note TEXT;
ALTER TABLE review_cases ADD COLUMN decided_by TEXT;
ALTER TABLE review_cases ADD COLUMN decided_at TEXT;
CREATE INDEX review_cases_status ON review_cases (status, kind)
;

CREATE TABLE home_visits (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    status TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    address_enc BLOB NOT NULL,
    reason TEXT NOT NULL,
    booked_by TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    assigned_to TEXT,
    assigned_at TEXT,
    completed_at TEXT,
    certification_id INTEGER REFERENCES certifications (id)
);
CREATE INDEX home_visits_status ON home_visits (status, window_end);

CREATE TABLE service_records (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER REFERENCES recipients (id),
    certification_id INTEGER REFERENCES certifications (id),
    kind TEXT NOT NULL,
    rating INTEGER,
    note_enc BLOB NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX service_records_recipient ON service_records (recipient_id)
