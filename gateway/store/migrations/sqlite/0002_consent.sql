-- Consent evidence: append-only history per (sender identity, address).
-- address_key is the suppression key (domain A-label, local part case-folded) so an
-- opt-out blocks every case variant; `address` keeps the address as it was given.
CREATE TABLE consent_events (
    id            INTEGER PRIMARY KEY,
    sender_id     TEXT NOT NULL,
    address_key   TEXT NOT NULL,
    address       TEXT NOT NULL,
    status        TEXT NOT NULL,          -- opted_in | opted_out | exempt
    method        TEXT NOT NULL,
    topic         TEXT,                   -- NULL: all topics
    occurred_at   REAL NOT NULL,          -- when the recipient consented / refused (epoch s)
    recorded_at   REAL NOT NULL,
    source_system TEXT NOT NULL DEFAULT '',
    source_ref    TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    recorded_by   TEXT NOT NULL DEFAULT '',
    batch_id      TEXT,
    effective     INTEGER NOT NULL DEFAULT 1  -- 0 while its import batch awaits approval
);
CREATE INDEX consent_lookup ON consent_events (sender_id, address_key);
CREATE INDEX consent_batch ON consent_events (batch_id);
-- a CMP or form resending the same consent event is recorded once
CREATE UNIQUE INDEX consent_source_ref ON consent_events (sender_id, source_system, source_ref)
    WHERE source_ref IS NOT NULL AND batch_id IS NULL;

-- Evidence cannot be rewritten: only purge (retention elapsed) may delete rows.
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OF
    sender_id, address_key, address, status, method, topic, occurred_at, source_system,
    source_ref, client_ip, user_agent, recorded_by, batch_id ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent evidence is append-only');
END;

CREATE TABLE consent_last_sent (
    sender_id    TEXT NOT NULL,
    address_key  TEXT NOT NULL,
    last_sent_at REAL NOT NULL,
    PRIMARY KEY (sender_id, address_key)
) WITHOUT ROWID;

CREATE TABLE import_batches (
    id           TEXT PRIMARY KEY,
    sender_id    TEXT NOT NULL,
    created_at   REAL NOT NULL,
    created_by   TEXT NOT NULL,
    source_name  TEXT NOT NULL,
    grants       INTEGER NOT NULL,
    optouts      INTEGER NOT NULL,
    status       TEXT NOT NULL,          -- pending | approved | rejected
    decided_by   TEXT,
    decided_at   REAL
);

-- Every look at personal data by a person (lookups, exports, reveals).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
