-- What must not enter the log lives here, in mutable tables keyed by the
-- ids the events carry.

-- Argon2id password hashes (PHC strings). The email is unique here so that
-- registration can claim it before the user.created event is appended.
CREATE TABLE user_credentials
(
    user_id       uuid PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_credentials_email_key ON user_credentials (email);

-- Exchange credentials, AES-256-GCM encrypted: the ciphertext holds the
-- API key and secret as JSON; the associated data is the key id, so a row
-- cannot be moved to another key. `encryption_key_id` names the data key
-- for rotation. Deleting a row on disconnect shreds the credential.
CREATE TABLE exchange_key_secrets
(
    key_id            uuid PRIMARY KEY,
    user_id           uuid        NOT NULL,
    encryption_key_id text        NOT NULL,
    nonce             bytea       NOT NULL,
    ciphertext        bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens by SHA-256 of the token. A token is used once: refreshing
-- revokes it and issues its successor in the same family; presenting a
-- revoked token revokes the whole family.
CREATE TABLE refresh_tokens
(
    token_hash  text PRIMARY KEY,
    user_id     uuid        NOT NULL,
    family_id   uuid        NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    replaced_by text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- The idempotency ledger: the first response to a key, replayed for every
-- repeat. A row with no status is a request still in flight.
CREATE TABLE idempotency_keys
(
    scope               text        NOT NULL,
    idempotency_key     text        NOT NULL,
    request_fingerprint text        NOT NULL,
    status_code         integer,
    response_body       jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    PRIMARY KEY (scope, idempotency_key)
);
