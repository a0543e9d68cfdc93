-- Signs of life get a table of their own, ordered by pensioner, written in pensioner order
-- once per transaction of a feed, instead of an index by pensioner over every feed record.
-- Feed records and the pending list lose their foreign key to recipients: a pensioner is
-- never deleted, and each check was one more look-up of the roll per record.
ALTER TABLE feed_records DROP CONSTRAINT IF EXISTS feed_records_recipient_id_fkey;
DROP INDEX IF EXISTS feed_records_life;
CREATE TABLE life_signs (
    recipient_id BIGINT NOT NULL,
    event_date TEXT NOT NULL,
    feed_record_id BIGINT NOT NULL,
    weight_milli BIGINT NOT NULL,
    PRIMARY KEY (recipient_id, event_date, feed_record_id)
);
INSERT INTO life_signs (recipient_id, event_date, feed_record_id, weight_milli)
    SELECT recipient_id, event_date, id, weight_milli FROM feed_records
    WHERE kind = 'life' AND voided = 0 AND recipient_id IS NOT NULL AND event_date IS NOT NULL;
ALTER TABLE feed_pending_life DROP CONSTRAINT IF EXISTS feed_pending_life_recipient_id_fkey

