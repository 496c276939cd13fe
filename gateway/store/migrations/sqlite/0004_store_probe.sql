-- The event store's health probe: one row, rewritten with a padding larger than an
-- event (table, index and overflow pages), so a probe that commits means an event would
-- too. A no-op UPDATE fitted in the WAL space a full disk still had, and let
-- transactions in that then could not be logged.
CREATE TABLE store_probe (
    id      INTEGER PRIMARY KEY,
    pad     BLOB NOT NULL,
    at      REAL NOT NULL
);
