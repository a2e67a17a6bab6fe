-- Accounts (issue #18): verified email, disabled accounts, the profile's
-- new fields, one-time codes sent by email, and sessions.

-- The users read model: what `user.email_verified`, `user.disabled` /
-- `user.enabled` and `user.updated`'s new fields record.
ALTER TABLE users
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN disabled_at    timestamptz,
    ADD COLUMN timezone       text,
    ADD COLUMN notifications  jsonb;

-- Whether the account is disabled and its email verified, beside its credentials, so that every
-- request's token check reads one row by primary key. The log decides:
-- the command side sets this before appending `user.disabled` and clears
-- it after `user.enabled`, and start-up brings every row back to what the
-- log says (a crash between the two).
ALTER TABLE user_credentials
    ADD COLUMN disabled_at    timestamptz,
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- One-time codes sent by email: only their SHA-256 digest (keyed by the
-- user, the purpose and a server secret), never the code. One live code
-- per user and purpose; a new one replaces it. `attempts` counts wrong
-- guesses; `used_at` marks a code spent.
CREATE TABLE email_codes
(
    user_id    uuid        NOT NULL,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    code_hash  text        NOT NULL,
    sent_at    timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    used_at    timestamptz,
    PRIMARY KEY (user_id, purpose)
);

-- A session is a refresh-token family: when it began, and the client that
-- began it (its User-Agent, at most 200 characters).
CREATE TABLE sessions
(
    family_id  uuid PRIMARY KEY,
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    client     text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON email_codes, sessions TO muckard_app;
