-- Where each named subscriber of the log has got to: the commit-order
-- position (transaction_id, global_position) of the last event it handled.
CREATE TABLE subscriber_checkpoints
(
    subscriber      text PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    events_handled  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Wakes log readers when events commit (NOTIFY is delivered at commit).
-- Readers also poll, so a lost notification only adds latency.
CREATE FUNCTION events_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('muckard_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Read models, built only by the projectors from the log.

CREATE TABLE users
(
    user_id       uuid PRIMARY KEY,
    email         text        NOT NULL,
    display_name  text,
    role          text        NOT NULL,
    onboarded     boolean     NOT NULL DEFAULT false,
    risk_profile  text,
    experience    text,
    created_at    timestamptz NOT NULL,
    last_login_at timestamptz,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX users_created_idx ON users (created_at, user_id);

CREATE TABLE exchange_keys
(
    key_id            uuid PRIMARY KEY,
    owner_id          uuid        NOT NULL,
    exchange          text        NOT NULL,
    label             text,
    fingerprint       text        NOT NULL,
    permissions       jsonb       NOT NULL,
    status            text        NOT NULL,
    last_test_failure text,
    connected_at      timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX exchange_keys_owner_idx ON exchange_keys (owner_id);

CREATE TABLE bot_status
(
    bot_id          uuid PRIMARY KEY,
    owner_id        uuid        NOT NULL,
    key_id          uuid        NOT NULL,
    pair            text        NOT NULL,
    strategy        jsonb       NOT NULL,
    state           text        NOT NULL,
    trades_executed bigint      NOT NULL DEFAULT 0,
    trades_skipped  bigint      NOT NULL DEFAULT 0,
    errors          bigint      NOT NULL DEFAULT 0,
    last_trade      jsonb,
    last_skip       text,
    last_error      text,
    last_error_at   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX bot_status_owner_idx ON bot_status (owner_id);

-- Every fill. trade_id is assigned by the single active trades projector
-- in commit order, so paging by it never skips or repeats a row while new
-- trades arrive.
CREATE TABLE trades
(
    trade_id        bigint PRIMARY KEY,
    user_id         uuid        NOT NULL,
    bot_id          uuid        NOT NULL,
    order_id        text        NOT NULL,
    pair            text        NOT NULL,
    side            text        NOT NULL,
    quantity        numeric     NOT NULL,
    price           numeric     NOT NULL,
    fee             numeric     NOT NULL,
    executed_at     timestamptz NOT NULL,
    event_id        uuid        NOT NULL,
    UNIQUE (bot_id, order_id)
);
CREATE INDEX trades_user_idx ON trades (user_id, trade_id DESC);

CREATE TABLE positions
(
    user_id       uuid        NOT NULL,
    pair          text        NOT NULL,
    quantity      numeric     NOT NULL,
    cost_basis    numeric     NOT NULL,
    average_cost  numeric     NOT NULL,
    realised_pnl  numeric     NOT NULL,
    trades        bigint      NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, pair)
);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON subscriber_checkpoints, users, exchange_keys, bot_status, trades, positions
    TO muckard_app;
