-- Messages pushed by other systems (DCI notify, OpenCRVS webhooks), once per channel,
-- sender and message id. A message is `received` before its events go through the feed
-- pipeline and `done` with the answer given once they have: a retry of a `done` message
-- gets that answer again, and one still `received` (the first attempt stopped half-way)
-- is run again, which the pipeline's once-per-record-id rule makes safe. `digest` is a
-- keyed digest of the content, so the same id with other content is noticed without
-- keeping personal data here.
CREATE TABLE inbound_messages (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    status TEXT NOT NULL,
    response TEXT,
    received_by TEXT NOT NULL,
    received_at TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (channel, sender, message_id)
)
