//! Running it for real: `/health`, `/ready`, `/metrics`, CORS, per-client
//! rate limits, W3C trace context from a request to the event log and the
//! AMQP headers (`endpoints`); the `muckard` binary starting while Kafka
//! and RabbitMQ are down and turning ready when they return, and SIGTERM
//! during a steady command load (`process`); a burst of log-ins against
//! the bounded password hashing (`hashing`); rate limits shared by two
//! processes through Redis, and kept per process without it
//! (`shared_limits`); one REST command's trace exported over OTLP to a
//! real receiver (`traces`); the alert rules through promtool, and every
//! metric the Grafana dashboard and the alert rules of `deploy/` name
//! exported by a running `muckard serve` (`operators_kit`).

mod endpoints;
mod hashing;
mod least_privilege;
mod operators_kit;
mod process;
mod shared_limits;
mod traces;
