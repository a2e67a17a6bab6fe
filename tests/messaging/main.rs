//! RabbitMQ commands and alerts and the bot runner, against the real
//! RabbitMQ and PostgreSQL; each test on queues of its own prefix and a
//! database of its own. The broker-restart test is the `rabbit_restart`
//! target.

mod dead_letters;
mod duplicates;
mod end_to_end;
mod flow;
mod kraken;
mod overflow;
mod resume;
mod strategies;
