-- The chain trigger with its hash input written out inline. The input and
-- the hash are exactly those of events_hash_input (ARCHITECTURE.md, "The
-- hash chain, precisely"), which stays for auditors and tests; calling it
-- from the trigger passed the whole new row as a composite value through
-- two SQL functions per field, which made an append through the trigger
-- cost about 1.4 times an insert through the inline expression
-- (BENCHMARKS.md, "api").
CREATE OR REPLACE FUNCTION events_before_insert() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    previous text;
    sequence_text text;
    payload_text text;
    metadata_text text;
    event_id_text text;
    position_text text;
    recorded_text text;
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
    sequence_text := NEW.sequence::text;
    payload_text := NEW.payload::text;
    metadata_text := NEW.metadata::text;
    event_id_text := NEW.event_id::text;
    position_text := NEW.global_position::text;
    recorded_text := to_char(NEW.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    NEW.hash := encode(sha256(convert_to(
           octet_length(previous) || ':' || previous || ','
        || octet_length(NEW.aggregate_type) || ':' || NEW.aggregate_type || ','
        || octet_length(NEW.aggregate_id) || ':' || NEW.aggregate_id || ','
        || octet_length(sequence_text) || ':' || sequence_text || ','
        || octet_length(NEW.event_type) || ':' || NEW.event_type || ','
        || octet_length(NEW.event_version) || ':' || NEW.event_version || ','
        || octet_length(payload_text) || ':' || payload_text || ','
        || octet_length(metadata_text) || ':' || metadata_text || ','
        || octet_length(event_id_text) || ':' || event_id_text || ','
        || octet_length(position_text) || ':' || position_text || ','
        || octet_length(recorded_text) || ':' || recorded_text || ',',
        'UTF8')), 'hex');
    RETURN NEW;
END
$$;
