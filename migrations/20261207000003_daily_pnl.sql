-- Each user's realised P&L, fees and fills per UTC day (of the fill's
-- execution) and quote currency, from the portfolio's trade.executed
-- events: what GET /api/v1/dashboard sums for today and in total. Built
-- only by the daily_pnl projector.

CREATE TABLE daily_pnl
(
    user_id      uuid    NOT NULL,
    day          date    NOT NULL,
    quote        text    NOT NULL,
    realised_pnl numeric NOT NULL,
    fees         numeric NOT NULL,
    trades       bigint  NOT NULL,
    PRIMARY KEY (user_id, day, quote)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON daily_pnl TO muckard_app;
GRANT SELECT ON daily_pnl TO muckard_auditor;
