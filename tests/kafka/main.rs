//! The Kafka mirror against a real Kafka-compatible broker (the local
//! `tansu`, `TEST_KAFKA_BOOTSTRAP_SERVERS`, default 127.0.0.1:9092). Each
//! test publishes to its own topic prefix and deletes its topics.

mod account_secrets;
mod asyncapi;
mod checkpoints;
mod erasure;
mod faults;
mod mirror;
mod schemas;
mod support;
mod support_tickets;
mod topics;
