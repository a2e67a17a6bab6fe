-- Erasure by crypto-shredding. Personal data (email, display name, a
-- failed log-in's source address) is written to events sealed with
-- AES-256-GCM under a per-user data key kept here, outside the log. The
-- chain covers the ciphertext, so deleting a user's key erases their data
-- and changes no event. The service inserts a key at registration and
-- deletes it at erasure; it never updates one.
CREATE TABLE user_data_keys
(
    user_id    uuid PRIMARY KEY,
    data_key   bytea       NOT NULL CHECK (length(data_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, DELETE ON user_data_keys TO muckard_app;
-- Rebuilding the users read model opens what the live projector opened.
GRANT SELECT ON user_data_keys TO muckard_auditor;

-- An erased user's row keeps its id, role and dates and loses its email
-- and display name.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE users ADD COLUMN erased_at timestamptz;
