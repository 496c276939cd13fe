-- Recipients at personal Gmail addresses, per sender and UTC day, whatever the client class:
-- Gmail treats a sender as a bulk sender from the first day it sends about 5,000 messages to
-- them, and for good (legal.md §2.1; rule sender.gmail_bulk). Rows are kept, so the first
-- such day stays readable.
ALTER TABLE sender_volume ADD COLUMN gmail_sent BIGINT NOT NULL DEFAULT 0;
