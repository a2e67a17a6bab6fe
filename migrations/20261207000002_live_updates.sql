-- What GET /api/v1/stream sends each user: one row per event of theirs
-- that changes a bot's status, records a fill or a position, or raises or
-- reads a notification, at the event's commit-order position (which is the
-- server-sent event's id). Built only by the live_updates projector; the
-- stream sends a row once every read model it concerns has committed its
-- position.

CREATE TABLE live_updates
(
    user_id         uuid        NOT NULL,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    kind            text        NOT NULL,
    data            jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (user_id, transaction_id, global_position)
);
-- The stream's hub reads every user's new rows by position.
CREATE INDEX live_updates_position_idx ON live_updates (transaction_id, global_position);

GRANT SELECT, INSERT, UPDATE, DELETE ON live_updates TO muckard_app;
GRANT SELECT ON live_updates TO muckard_auditor;
