-- HTTP API / web UI access: bearer tokens (hashed), server-side UI sessions.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,          -- short public id, e.g. tk_3f9a1c2b (for revoke/list)
    name         TEXT NOT NULL,             -- the person or system; the audit trail's actor
    role         TEXT NOT NULL,             -- marketer | ops | approver | auditor | admin
    hash         TEXT NOT NULL UNIQUE,      -- sha256 hex of the secret; the secret is never stored
    created_at   DOUBLE PRECISION NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    expires_at   DOUBLE PRECISION,                      -- NULL: does not expire
    revoked_at   DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION
);

CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,            -- sha256 hex of the cookie value
    token_id   TEXT NOT NULL REFERENCES api_tokens (id),
    csrf       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- audit trail and compliance report reads
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX consent_events_optouts ON consent_events (status, recorded_at);
