-- Snapshots written before the fix in command_side::cache (each commit's
-- events were applied twice to the cached state and the snapshot: a bot's
-- holding, its counters and a portfolio's positions doubled) hold states
-- the log does not. Snapshots are a cache of the fold of the log: drop
-- them, and every aggregate loads from its events until it crosses its
-- next SNAPSHOT_EVERY and is snapshotted again, correctly. Nothing in the
-- log changes. (`muckard-replay verify` compares a stream with its
-- snapshot to catch a cut tail; until new snapshots exist, the signed
-- checkpoints are what catch one.)
DELETE FROM snapshots;
