//! The replay tool against a real PostgreSQL: tampering caught and named by
//! `verify`, deterministic rebuilds equal to the live read models (and the
//! compare and swap around them), states as of a time or sequence, audit
//! reports and their re-check, and the REST audit endpoints.

mod anchors;
mod common;
mod export;
mod history;
mod rebuild;
mod rest;
mod signed;
mod tamper;
