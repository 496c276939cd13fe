-- Addresses mail must not go to although consent may allow it: an upstream answered that the
-- mailbox does not exist (5.1.1: a hard bounce), or ops entered one by hand. Unlike an
-- opt-out, a suppression can be wrong (an upstream misconfigured to answer 5.1.1 for
-- everyone), so ops can clear it; the row stays, with who cleared it, when and why.
CREATE TABLE suppressions (
    id           BIGSERIAL PRIMARY KEY,
    address_key  TEXT NOT NULL,              -- suppression_key(): every sender, every case
    reason       TEXT NOT NULL,              -- hard_bounce | manual
    detail       TEXT NOT NULL DEFAULT '',   -- the upstream's reply, or the operator's note
    sender_id    TEXT NOT NULL DEFAULT '',   -- whose mail bounced ('' when entered by hand)
    created_at   DOUBLE PRECISION NOT NULL,
    created_by   TEXT NOT NULL,              -- 'gateway' or the operator
    cleared_at   DOUBLE PRECISION,
    cleared_by   TEXT,
    clear_reason TEXT
);
-- The RCPT lookup reads active entries only.
CREATE INDEX suppressions_active ON suppressions (address_key) WHERE cleared_at IS NULL;
CREATE INDEX suppressions_created ON suppressions (created_at);
