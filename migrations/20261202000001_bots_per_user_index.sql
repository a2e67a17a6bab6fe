-- The bots-per-user quota counts a user's `bot.configured` events in the
-- log itself (`command_side::bots`); this index makes that count read only
-- the user's own bots, however long the log grows.
CREATE INDEX events_bot_owner_idx ON events (((payload::jsonb) ->> 'owner_id'))
    WHERE aggregate_type = 'Bot' AND event_type = 'bot.configured';
