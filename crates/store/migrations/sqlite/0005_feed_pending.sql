-- Signs of life are stored as they arrive and applied (added up, certified) per pensioner
-- after the whole feed is in: `applied = 0` marks those still to apply, so a feed that
-- stops half-way has its signs applied by the next run instead of lost.
ALTER TABLE feed_records ADD COLUMN applied INTEGER NOT NULL DEFAULT 1;
CREATE INDEX feed_records_pending ON feed_records (recipient_id) WHERE applied = 0;
