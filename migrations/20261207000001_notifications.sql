-- What each user should be told, built only by the notifications projector
-- from the Notification streams. `number` counts the notifications in
-- commit order (the single active projector assigns it), so paging newest
-- first by it never skips or repeats a row while new ones arrive.

CREATE TABLE notifications
(
    notification_id   uuid PRIMARY KEY,
    number            bigint      NOT NULL UNIQUE,
    user_id           uuid        NOT NULL,
    kind              text        NOT NULL,
    bot_id            uuid,
    key_id            uuid,
    ticket_id         uuid,
    message           text        NOT NULL,
    source_event_id   uuid        NOT NULL,
    source_event_type text        NOT NULL,
    created_at        timestamptz NOT NULL,
    read_at           timestamptz
);
-- A user's list, newest first, and their unread count.
CREATE INDEX notifications_user_idx ON notifications (user_id, number);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON notifications TO muckard_app;
GRANT SELECT ON notifications TO muckard_auditor;
