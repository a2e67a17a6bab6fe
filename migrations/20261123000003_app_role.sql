-- The role the service should run as in production: it may read and
-- append to the log but holds no UPDATE, DELETE or TRUNCATE on it, so the
-- append-only rule does not rest on the trigger alone. Grant it to the
-- service's login role (GRANT muckard_app TO <login>); migrations run as
-- the owner. Roles are cluster-wide, so creating it tolerates a race with
-- another database migrating at the same moment.
DO
$$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'muckard_app') THEN
        BEGIN
            CREATE ROLE muckard_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END
$$;

REVOKE ALL ON events FROM muckard_app;
GRANT SELECT, INSERT ON events TO muckard_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON snapshots, user_credentials, exchange_key_secrets, refresh_tokens, idempotency_keys
    TO muckard_app;
