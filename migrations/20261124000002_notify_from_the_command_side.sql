-- Subscribers are woken by the command side after it commits
-- (command_side::notify), no longer by a trigger: a transaction that
-- NOTIFYs holds a database-wide lock through its commit's WAL flush, so
-- with this trigger every append committed one at a time (BENCHMARKS.md,
-- "api"). Anything else that writes events is seen by the subscribers'
-- polling (PROJECTOR_POLL_MS), or can call pg_notify('muckard_events', '')
-- after it commits.
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();
