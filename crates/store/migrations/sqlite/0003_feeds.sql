CREATE TABLE feed_records (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recipient_id INTEGER REFERENCES recipients (id),
    class TEXT NOT NULL,
    event_date TEXT,
    weight_milli INTEGER NOT NULL,
    void_of TEXT,
    voided INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (source, record_id)
);
CREATE INDEX feed_records_life ON feed_records (recipient_id, kind, event_date)
;

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    payload BLOB NOT NULL,
    result TEXT,
    error TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_status ON jobs (status, id)
