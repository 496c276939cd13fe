-- Advertising mail sent and complaints received, per sender and UTC day: the complaint
-- rate's two sides (rule sender.complaint_rate). Each gateway process counts in memory and
-- adds its counts here every [store] volume_interval; every process reads the sums back.
CREATE TABLE sender_volume (
    sender_id  TEXT NOT NULL,
    day        BIGINT NOT NULL,             -- UTC day number: epoch seconds // 86400
    sent       BIGINT NOT NULL DEFAULT 0,   -- recipients of advertising mail the upstream took
    complaints BIGINT NOT NULL DEFAULT 0,   -- feedback-loop reports (opt-out method complaint)
    PRIMARY KEY (sender_id, day)
);
