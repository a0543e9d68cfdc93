-- Feed records are the largest table: every record of every feed, kept for as long as its
-- source may send it again or void it. Each row carried its source's name and the time it
-- was received as text, and the table was a row store plus a unique index on (source,
-- record_id): 1.3 GB and about 9 s of pure SQLite for 10M records. Now a source is a
-- number (feed_sources), the time is that of the batch the record came in
-- (feed_receipts), and the rows are stored in their unique key's order, one B-tree.
-- The row id that signs of life name is given by lifecert from feed_record_ids.
CREATE TABLE feed_sources (
    no INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO feed_sources (name) SELECT DISTINCT source FROM feed_records ORDER BY source;
CREATE TABLE feed_receipts (
    id INTEGER PRIMARY KEY,
    source_no INTEGER NOT NULL REFERENCES feed_sources (no),
    received_at TEXT NOT NULL
);
INSERT INTO feed_receipts (source_no, received_at)
    SELECT DISTINCT s.no, f.received_at FROM feed_records f JOIN feed_sources s ON s.name = f.source
    ORDER BY f.received_at, s.no;
CREATE TABLE feed_records_new (
    source_no INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    receipt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    recipient_id INTEGER,
    class TEXT NOT NULL,
    event_date TEXT,
    weight_milli INTEGER NOT NULL,
    void_of TEXT,
    voided INTEGER NOT NULL,
    PRIMARY KEY (source_no, record_id)
) WITHOUT ROWID;
INSERT INTO feed_records_new (source_no, record_id, id, receipt, kind, recipient_id, class, event_date, weight_milli, void_of, voided)
    SELECT s.no, f.record_id, f.id, r.id, f.kind, f.recipient_id, f.class, f.event_date, f.weight_milli, f.void_of, f.voided
    FROM feed_records f
    JOIN feed_sources s ON s.name = f.source
    JOIN feed_receipts r ON r.source_no = s.no AND r.received_at = f.received_at;
DROP TABLE feed_records;
ALTER TABLE feed_records_new RENAME TO feed_records;
CREATE TABLE feed_record_ids (
    next INTEGER NOT NULL
);
INSERT INTO feed_record_ids (next) SELECT COALESCE(MAX(id), 0) + 1 FROM feed_records
