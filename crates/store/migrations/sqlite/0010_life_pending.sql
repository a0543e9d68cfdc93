-- The pensioners with signs of life still to add up, 64 to a row: `bits` has bit
-- (id % 64) set for pensioner id in block id / 64. A feed names most of the roll, and
-- listing each pensioner in a table of its own meant inserting hundreds of thousands of
-- keys all over it per commit (a tenth of a large feed's time). A million pensioners now
-- fit in 15,625 rows, updated in place. Bits are distinct, so a sum is their union.
CREATE TABLE life_pending (
    block INTEGER PRIMARY KEY,
    bits INTEGER NOT NULL
);
INSERT INTO life_pending (block, bits)
    SELECT recipient_id >> 6, SUM(1 << (recipient_id & 63)) FROM feed_pending_life
    GROUP BY recipient_id >> 6;
DROP TABLE feed_pending_life
