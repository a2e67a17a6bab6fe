//! RabbitMQ commands and alerts and the bot runner, against the real
//! RabbitMQ and PostgreSQL; each test on queues of its own prefix and a
//! database of its own. The broker-restart test is the `rabbit_restart`
//! target.

mod control_characters;
mod dead_letters;
mod doubles;
mod duplicates;
mod end_to_end;
mod failover;
mod fairness;
mod flow;
mod isolation;
mod kraken;
mod live;
mod notifications;
mod overflow;
mod quotas;
mod resume;
mod revoked_key;
mod strategies;
