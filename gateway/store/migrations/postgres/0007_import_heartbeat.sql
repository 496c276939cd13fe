-- A running import refreshes heartbeat_at every few seconds: a `loading` batch whose beat
-- stopped belongs to an import that died (SIGKILL, the machine lost) and can be swept.
ALTER TABLE import_batches ADD COLUMN heartbeat_at DOUBLE PRECISION;
