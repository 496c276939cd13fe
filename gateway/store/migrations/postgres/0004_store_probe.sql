-- The event store's health probe: one row, rewritten with a padding larger than an
-- event, so a probe that commits means an event would too (see the SQLite migration).
CREATE TABLE store_probe (
    id      INTEGER PRIMARY KEY,
    pad     BYTEA NOT NULL,
    at      DOUBLE PRECISION NOT NULL
);
