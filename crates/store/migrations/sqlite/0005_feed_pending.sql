-- Signs of life are stored as they arrive and added up per pensioner once the feed is in.
-- A pensioner listed here has signs not yet added up: a feed that stops half-way leaves
-- them listed and the next run applies them, so none is lost.
CREATE TABLE feed_pending_life (
    recipient_id BIGINT PRIMARY KEY REFERENCES recipients (id)
)
