-- A sign of life's date is kept as a day number (days since 1970-01-01) instead of ten
-- characters of text: the table holds every sign of every feed, and its size is what a
-- large feed pays for. A void finds its sign by pensioner and record alone.
CREATE TABLE life_signs_new (
    recipient_id BIGINT NOT NULL,
    day BIGINT NOT NULL,
    feed_record_id BIGINT NOT NULL,
    weight_milli BIGINT NOT NULL,
    CONSTRAINT life_signs_by_pensioner PRIMARY KEY (recipient_id, day, feed_record_id)
);
INSERT INTO life_signs_new (recipient_id, day, feed_record_id, weight_milli)
    SELECT recipient_id, CAST(event_date AS DATE) - DATE '1970-01-01', feed_record_id, weight_milli
    FROM life_signs ORDER BY 1, 2, 3;
DROP TABLE life_signs;
ALTER TABLE life_signs_new RENAME TO life_signs
