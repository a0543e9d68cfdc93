-- Notification delivery. A row of `notification_outbox` is a notice (a reminder for a due
-- date and stage, an overdue notice, a suspension, a resumption), recorded once by its
-- unique key in the transaction that decided it. Each notice is sent to one or two
-- addressees (the pensioner, and an agent or family member when one is recorded): one
-- `notification_deliveries` row each, whose id is the stable message id a gateway sees on
-- every attempt. A delivery is claimed with a lease (`locked_by`, `lease_until`), so a
-- delivery whose node died is sent again, under the same message id, once the lease has
-- run out. Every attempt is a row of `notification_attempts`, shown on the pensioner's
-- timeline. No message text is stored: it is rendered at send time from the encrypted name.
--
-- Message ids are `ntf-<prefix>-<delivery id>`, with a random prefix per database, so
-- that two databases (a test system, another agency) sending through one gateway never
-- share an id and have a message dropped as a duplicate.
INSERT INTO meta (key, value) VALUES ('message_id_prefix', randomblob(4));

-- Contact details for notifications, encrypted like the phone number: an email address,
-- an app push reference, and an agent or family member (name and mobile number), with
-- the channel and language the pensioner prefers (none: SMS, Chinese).
ALTER TABLE recipients ADD COLUMN email_enc BLOB;
ALTER TABLE recipients ADD COLUMN app_ref_enc BLOB;
ALTER TABLE recipients ADD COLUMN agent_name_enc BLOB;
ALTER TABLE recipients ADD COLUMN agent_phone_enc BLOB;
ALTER TABLE recipients ADD COLUMN preferred_channel TEXT;
ALTER TABLE recipients ADD COLUMN language TEXT;

CREATE TABLE notification_deliveries (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES notification_outbox (id),
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    addressee TEXT NOT NULL,
    channel TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    locked_by TEXT,
    last_error TEXT,
    provider_id TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (outbox_id, addressee)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id) WHERE status IN ('pending', 'retrying');
CREATE INDEX notification_deliveries_sending ON notification_deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX notification_deliveries_status ON notification_deliveries (status, id);
CREATE INDEX notification_deliveries_recipient ON notification_deliveries (recipient_id);

CREATE TABLE notification_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES notification_deliveries (id),
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    provider_id TEXT,
    worker TEXT NOT NULL
);
CREATE INDEX notification_attempts_delivery ON notification_attempts (delivery_id);
CREATE INDEX notification_attempts_recipient ON notification_attempts (recipient_id);

-- A notice is recorded `pending` in the transaction that decided it (the cycle's stays
-- short) and a delivery worker makes its deliveries and marks it `queued`. Notices
-- recorded before delivery existed are pending too: those no longer true when their turn
-- comes (a reminder whose due date has passed, say) are cancelled then, not sent.
CREATE INDEX notification_outbox_pending ON notification_outbox (id) WHERE status = 'pending'
