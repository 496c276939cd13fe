-- What receivers make of each sender's mail, per UTC day: advertising mail sent and complaints
-- received (rule sender.complaint_rate), hard bounces (rule sender.bounce_rate), refusals for
-- failed authentication (rule sender.auth_refused). Each gateway process counts in memory and adds its counts here every
-- [store] volume_interval; every process reads the sums back.
CREATE TABLE sender_volume (
    sender_id  TEXT NOT NULL,
    day        BIGINT NOT NULL,             -- UTC day number: epoch seconds // 86400
    sent       BIGINT NOT NULL DEFAULT 0,   -- recipients of advertising mail the upstream took
    complaints BIGINT NOT NULL DEFAULT 0,   -- feedback-loop reports (opt-out method complaint)
    auth_refusals BIGINT NOT NULL DEFAULT 0, -- DSNs or upstream replies: 5.7.26 and the like
    hard_bounces BIGINT NOT NULL DEFAULT 0,  -- DSNs or upstream replies: 5.1.1
    PRIMARY KEY (sender_id, day)
);
