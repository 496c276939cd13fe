-- The event log: one row per transaction outcome or refused recipient.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    created_at     REAL NOT NULL,
    verdict        TEXT NOT NULL,
    phase          TEXT NOT NULL,
    client         TEXT NOT NULL,
    client_class   TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    sender_id      TEXT NOT NULL,
    mail_from      TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    header_from    TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    size           INTEGER NOT NULL,
    rule_ids       TEXT NOT NULL,   -- ",a.b,c.d," so one rule matches with LIKE '%,a.b,%'
    monitored      TEXT NOT NULL,
    reply          TEXT NOT NULL,
    upstream_reply TEXT NOT NULL,
    results        TEXT NOT NULL,   -- JSON: every rule's outcome
    timings        TEXT NOT NULL    -- JSON: seconds per stage
);
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_verdict_created ON events (verdict, created_at);
CREATE INDEX events_recipient ON events (recipient);
