-- Consent evidence: append-only history per (sender identity, address).
-- address_key is the suppression key (domain A-label, local part case-folded) so an
-- opt-out blocks every case variant; `address` keeps the address as it was given.
CREATE TABLE consent_events (
    id            BIGSERIAL PRIMARY KEY,
    sender_id     TEXT NOT NULL,
    address_key   TEXT NOT NULL,
    address       TEXT NOT NULL,
    status        TEXT NOT NULL,          -- opted_in | opted_out | exempt
    method        TEXT NOT NULL,
    topic         TEXT,                   -- NULL: all topics
    occurred_at   DOUBLE PRECISION NOT NULL,          -- when the recipient consented / refused (epoch s)
    recorded_at   DOUBLE PRECISION NOT NULL,
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
CREATE FUNCTION consent_events_append_only() RETURNS trigger AS $$
BEGIN
    IF (NEW.sender_id, NEW.address_key, NEW.address, NEW.status, NEW.method, NEW.topic,
        NEW.occurred_at, NEW.source_system, NEW.source_ref, NEW.client_ip, NEW.user_agent,
        NEW.recorded_by, NEW.batch_id)
       IS DISTINCT FROM
       (OLD.sender_id, OLD.address_key, OLD.address, OLD.status, OLD.method, OLD.topic,
        OLD.occurred_at, OLD.source_system, OLD.source_ref, OLD.client_ip, OLD.user_agent,
        OLD.recorded_by, OLD.batch_id) THEN
        RAISE EXCEPTION 'consent evidence is append-only';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

CREATE TABLE consent_last_sent (
    sender_id    TEXT NOT NULL,
    address_key  TEXT NOT NULL,
    last_sent_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sender_id, address_key)
);

CREATE TABLE import_batches (
    id           TEXT PRIMARY KEY,
    sender_id    TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    created_by   TEXT NOT NULL,
    source_name  TEXT NOT NULL,
    grants       INTEGER NOT NULL,
    optouts      INTEGER NOT NULL,
    status       TEXT NOT NULL,          -- pending | approved | rejected
    decided_by   TEXT,
    decided_at   DOUBLE PRECISION
);

-- Every look at personal data by a person (lookups, exports, reveals).
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         DOUBLE PRECISION NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
