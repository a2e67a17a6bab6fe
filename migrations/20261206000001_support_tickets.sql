-- Support tickets, built only by their projectors from the SupportTicket
-- streams. The subject and the message bodies are the ticket owner's
-- personal data: the projectors open them with the owner's data key
-- (user_data_keys) and clear them when the owner is erased.

CREATE TABLE support_tickets
(
    ticket_id       uuid PRIMARY KEY,
    owner_id        uuid        NOT NULL,
    -- Null once the owner is erased.
    subject         text,
    status          text        NOT NULL,
    assignee_id     uuid,
    replies         integer     NOT NULL DEFAULT 0,
    opened_at       timestamptz NOT NULL,
    last_message_at timestamptz NOT NULL,
    closed_at       timestamptz,
    updated_at      timestamptz NOT NULL
);
-- The lists: everyone's (staff), a user's own, and the staff's filters.
CREATE INDEX support_tickets_opened_idx ON support_tickets (opened_at, ticket_id);
CREATE INDEX support_tickets_owner_idx ON support_tickets (owner_id, opened_at, ticket_id);
CREATE INDEX support_tickets_assignee_idx ON support_tickets (assignee_id, opened_at, ticket_id)
    WHERE assignee_id IS NOT NULL;

-- Each ticket's messages: the opening body as number 0, then every reply
-- under its number.
CREATE TABLE support_messages
(
    ticket_id  uuid        NOT NULL,
    number     integer     NOT NULL,
    owner_id   uuid        NOT NULL,
    author_id  uuid        NOT NULL,
    from_staff boolean     NOT NULL,
    -- Null once the ticket's owner is erased.
    body       text,
    written_at timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, number)
);
CREATE INDEX support_messages_owner_idx ON support_messages (owner_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON support_tickets, support_messages TO muckard_app;
GRANT SELECT ON support_tickets, support_messages TO muckard_auditor;
