-- Whether an imported consent row is in effect follows its batch's state, so finishing or
-- approving an import updates one import_batches row instead of every row of the batch
-- (a million-row flip rewrote ~150 MB and held the write lock 2.2 s; the gateway's event
-- commits waited behind it). consent_events.effective now means "in effect by itself":
-- 1 for live events (and imports finished before this migration), 0 for imported rows,
-- whose batch decides. Read `effective` from this view, never from the table.
--   batch loading or failed: no row in effect
--   batch pending (grants await a second person): its opt-outs are in effect
--   batch approved: every row is in effect
CREATE VIEW consent_records AS
SELECT c.id, c.sender_id, c.address_key, c.address, c.status, c.method, c.topic,
       c.occurred_at, c.recorded_at, c.source_system, c.source_ref, c.client_ip,
       c.user_agent, c.recorded_by, c.batch_id,
       CASE
           WHEN c.effective = 1 THEN 1
           WHEN b.status = 'approved' THEN 1
           WHEN b.status = 'pending' AND c.status = 'opted_out' THEN 1
           ELSE 0
       END AS effective
FROM consent_events c LEFT JOIN import_batches b ON b.id = c.batch_id;
