//! The projector role: every read-model projector and the trade process
//! manager, each a subscriber task until shutdown.

use std::sync::Arc;

use command_side::CommandSide;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::log::LogReader;
use crate::process_manager::TradeRecorder;
use crate::read_models;
use crate::subscriber::{Subscriber, SubscriberRunner, SubscriberSettings};

/// Every subscriber of the projector role.
pub fn projector_role(commands: Arc<CommandSide>) -> Vec<Arc<dyn Subscriber>> {
    let mut subscribers = read_models::all();
    subscribers.push(Arc::new(TradeRecorder { commands }));
    subscribers
}

/// Starts the projector role's subscribers; they stop when `shutdown` is
/// cancelled, finishing the batch in hand.
pub fn spawn_projectors(
    commands: Arc<CommandSide>,
    settings: SubscriberSettings,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let runner = SubscriberRunner::new(
        commands.pool.clone(),
        LogReader::new(),
        settings,
        shutdown.clone(),
    );
    projector_role(commands)
        .into_iter()
        .map(|subscriber| tokio::spawn(runner.clone().run(subscriber, shutdown.clone())))
        .collect()
}
