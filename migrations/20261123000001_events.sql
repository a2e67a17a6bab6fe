-- The event log. postgres-es writes the first seven columns; everything
-- else comes from defaults and the trigger, so its INSERT stays unchanged.
CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 1) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         json                         NOT NULL,
    metadata        json                         NOT NULL,
    -- Unique and increasing in insert order, not gap-free and not commit
    -- order: readers order by (transaction_id, global_position).
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid                         NOT NULL DEFAULT gen_random_uuid(),
    recorded_at     timestamptz                  NOT NULL DEFAULT clock_timestamp(),
    prev_hash       text                         NOT NULL,
    hash            text                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position_key ON events (global_position);
CREATE UNIQUE INDEX events_event_id_key ON events (event_id);
CREATE INDEX events_commit_order_idx ON events (transaction_id, global_position);

-- Snapshots are a cache of aggregate state, rebuilt from the log at will,
-- so they are mutable.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- One field of the hash input: its length in bytes, a colon, the bytes, a
-- comma (a netstring), so no choice of field contents can collide.
CREATE FUNCTION events_netstring(field text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS
$$ SELECT octet_length(field)::text || ':' || field || ',' $$;

-- The hash input of a row given the previous row's hash. ARCHITECTURE.md
-- specifies it; the replay tool and auditors recompute it from the columns.
CREATE FUNCTION events_hash_input(prev_hash text, e events) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS
$$
SELECT events_netstring(prev_hash)
    || events_netstring(e.aggregate_type)
    || events_netstring(e.aggregate_id)
    || events_netstring(e.sequence::text)
    || events_netstring(e.event_type)
    || events_netstring(e.event_version)
    || events_netstring(e.payload::text)
    || events_netstring(e.metadata::text)
    || events_netstring(e.event_id::text)
    || events_netstring(e.global_position::text)
    || events_netstring(to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

-- Sets the server-owned columns of a new event and links it to the
-- previous event of its stream. A stream must grow one sequence at a time.
CREATE FUNCTION events_before_insert() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    previous text;
BEGIN
    NEW.transaction_id := pg_current_xact_id();
    NEW.recorded_at := clock_timestamp();
    IF NEW.sequence = 1 THEN
        previous := repeat('0', 64);
    ELSE
        SELECT hash INTO previous
          FROM events
         WHERE aggregate_type = NEW.aggregate_type
           AND aggregate_id = NEW.aggregate_id
           AND sequence = NEW.sequence - 1;
        IF previous IS NULL THEN
            RAISE EXCEPTION 'events: sequence % of stream %/% does not follow an existing event',
                NEW.sequence, NEW.aggregate_type, NEW.aggregate_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    NEW.prev_hash := previous;
    NEW.hash := encode(sha256(convert_to(events_hash_input(previous, NEW), 'UTF8')), 'hex');
    RETURN NEW;
END
$$;

CREATE TRIGGER events_chain
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_before_insert();

-- The log is append-only, for every role that does not disable triggers.
CREATE FUNCTION events_reject_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
