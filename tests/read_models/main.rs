//! The read side against a real PostgreSQL: the commit-order log reader
//! under concurrent writers, the projectors surviving SIGKILL, and the
//! query API.

mod crash;
mod gap;
mod paging;
mod queries;
mod registry;
