-- The compliance report counts opt-outs by recorded_at; only opt-out rows need to be in its
-- index. Every imported grant paid for an entry in (status, recorded_at) it never used.
DROP INDEX consent_events_optouts;
CREATE INDEX consent_events_optouts ON consent_events (recorded_at) WHERE status = 'opted_out';
