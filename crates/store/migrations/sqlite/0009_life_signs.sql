-- Signs of life get a table of their own, ordered by pensioner, written in pensioner order
-- once per transaction of a feed. Before, every feed record was also an entry in an index
-- by pensioner: a feed lands all over that index, and each commit wrote most of its pages
-- again (3M records wrote 9 GB for a 1 GB database).
-- Feed records lose their foreign key to recipients: a pensioner is never deleted, and
-- each check was one more random read of the roll per record. The pending list likewise.
CREATE TABLE feed_records_new (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recipient_id INTEGER,
    class TEXT NOT NULL,
    event_date TEXT,
    weight_milli INTEGER NOT NULL,
    void_of TEXT,
    voided INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (source, record_id)
);
INSERT INTO feed_records_new (id, source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at)
    SELECT id, source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at FROM feed_records;
DROP TABLE feed_records;
ALTER TABLE feed_records_new RENAME TO feed_records;
CREATE TABLE life_signs (
    recipient_id INTEGER NOT NULL,
    event_date TEXT NOT NULL,
    feed_record_id INTEGER NOT NULL,
    weight_milli INTEGER NOT NULL,
    PRIMARY KEY (recipient_id, event_date, feed_record_id)
) WITHOUT ROWID;
INSERT INTO life_signs (recipient_id, event_date, feed_record_id, weight_milli)
    SELECT recipient_id, event_date, id, weight_milli FROM feed_records
    WHERE kind = 'life' AND voided = 0 AND recipient_id IS NOT NULL AND event_date IS NOT NULL;
CREATE TABLE feed_pending_life_new (
    recipient_id BIGINT PRIMARY KEY
);
INSERT INTO feed_pending_life_new (recipient_id) SELECT recipient_id FROM feed_pending_life;
DROP TABLE feed_pending_life;
ALTER TABLE feed_pending_life_new RENAME TO feed_pending_life
;
-- What a feed checks of each pensioner it names, small enough to stay in the page cache:
-- reading it from the rows of the roll was a random page read per record.
CREATE INDEX recipients_facts ON recipients (id, birth_date, status, death_date)
