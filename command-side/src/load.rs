//! Loading an aggregate's current state from the log (its latest snapshot
//! and the events after it), without the command side's cache: what the
//! domain's services read other aggregates with, and the mapping of
//! cqrs-es' errors to [`CommandError`].

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use domain::DomainError;
use sqlx::PgPool;

use crate::error::CommandError;
use crate::repository::LedgerEventRepository;

/// The snapshotting store that loads from the log without a cache.
pub type UncachedStore<A> = PersistedEventStore<LedgerEventRepository, A>;

/// Loads an aggregate through a snapshotting store on `pool`.
pub async fn load<A>(
    pool: &PgPool,
    snapshot_every: usize,
    aggregate_id: &str,
) -> Result<(A, usize), CommandError>
where
    A: Aggregate<Error = DomainError>,
{
    let context = UncachedStore::<A>::new_snapshot_store(
        LedgerEventRepository::new(pool.clone()),
        snapshot_every.max(1),
    )
    .with_upcasters(domain::upcasters())
    .load_aggregate(aggregate_id)
    .await
    .map_err(|error| map_aggregate_error::<A>(error, aggregate_id))?;
    Ok((context.aggregate, context.current_sequence))
}

pub(crate) fn map_aggregate_error<A: Aggregate>(
    error: AggregateError<DomainError>,
    aggregate_id: &str,
) -> CommandError {
    match error {
        AggregateError::UserError(refusal) => CommandError::Refused(refusal),
        AggregateError::AggregateConflict => CommandError::Conflict {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
        },
        AggregateError::DatabaseConnectionError(cause) => {
            CommandError::DatabaseUnavailable(cause.to_string())
        }
        AggregateError::DeserializationError(cause) => CommandError::Unexpected(anyhow::anyhow!(
            "stored {} {aggregate_id} does not deserialize: {cause}",
            A::TYPE
        )),
        AggregateError::UnexpectedError(cause) => CommandError::Unexpected(anyhow::anyhow!(
            "command on {} {aggregate_id} failed: {cause}",
            A::TYPE
        )),
    }
}
