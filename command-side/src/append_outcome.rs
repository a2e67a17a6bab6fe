//! The append-outcome slot: what the store did for the command running in
//! this task (where its append landed, whether it was decided on a cached
//! state), set by the repository and the cache and read by the command
//! side after cqrs-es returns. cqrs-es' `execute` returns `()`, so this is
//! how the position gets back out.

use std::cell::Cell;

use event_log::Position;

/// What the store did for the command running in this task, read by the
/// command side after cqrs-es returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppendOutcome {
    /// Where the command's append landed; `None` when it appended nothing.
    pub appended: Option<Position>,
    /// The sequence of the cached state the command was decided on; `None`
    /// when the state was loaded from the log.
    pub cached_sequence: Option<usize>,
}

tokio::task_local! {
    static OUTCOME: Cell<AppendOutcome>;
}

/// Runs `command` (a cqrs-es execution) with a fresh [`AppendOutcome`] and
/// gives back both.
pub(crate) async fn with_append_outcome<T>(
    command: impl std::future::Future<Output = T>,
) -> (T, AppendOutcome) {
    OUTCOME
        .scope(Cell::new(AppendOutcome::default()), async {
            let outcome = command.await;
            (outcome, OUTCOME.with(Cell::get))
        })
        .await
}

/// Notes something in the running command's outcome slot; outside [`with_append_outcome`] it
/// does nothing.
pub(crate) fn note_append_outcome(update: impl FnOnce(&mut AppendOutcome)) {
    let _ = OUTCOME.try_with(|cell| {
        let mut outcome = cell.get();
        update(&mut outcome);
        cell.set(outcome);
    });
}
