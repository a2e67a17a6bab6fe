-- Least privilege at run time. `muckard serve` runs as a login role that
-- holds only muckard_app; `muckard migrate` runs as the owner. The app
-- role may read which migrations are applied (so a server that cannot
-- migrate refuses to start on a schema behind its code), and a read-only
-- muckard_auditor role is what `muckard-replay verify`, `state` and
-- `export` and the audit endpoints need: it reads the log, the snapshots
-- and the read models, and can change nothing. Roles are cluster-wide, so
-- creating one tolerates a race with another database migrating at once.
DO
$$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'muckard_auditor') THEN
        BEGIN
            CREATE ROLE muckard_auditor NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END
$$;

GRANT SELECT ON _sqlx_migrations TO muckard_app, muckard_auditor;
GRANT SELECT
    ON events, snapshots, subscriber_checkpoints, users, exchange_keys, bot_status, trades, positions
    TO muckard_auditor;
