//! `muckard`: the Muckard ledger service and its operator commands.

use anyhow::Context;
use api::config::Settings;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use command_side::CommandMetadata;
use domain::{Actor, Role};

#[derive(Parser)]
#[command(
    name = "muckard",
    version,
    about = "The Muckard ledger: event-sourced back end of the Muckard trading-bot platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the database and run the service's roles (the default:
    /// all of them in this process).
    Serve {
        /// Comma-separated roles to run: api, projector, kafka-mirror,
        /// publisher, runner, or all. Overrides
        /// MUCKARD_ROLES.
        #[arg(long)]
        roles: Option<String>,
    },
    /// Create the database if missing and apply the migrations, then exit.
    Migrate,
    /// Grant a role to a registered user, e.g. the first admin. The grant
    /// is recorded as a `user.role_assigned` event by the system actor.
    GrantRole {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// user, admin or auditor.
        #[arg(long)]
        role: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    api::telemetry::init(api::telemetry::format_from_env());
    let settings = Settings::from_env().context("reading settings from the environment")?;
    match cli.command.unwrap_or(Command::Serve { roles: None }) {
        Command::Serve { roles } => {
            let mut settings = settings;
            if let Some(roles) = roles {
                settings.roles = api::config::Roles::parse(&roles)
                    .map_err(|reason| anyhow::anyhow!("--roles: {reason}"))?;
            }
            serve(settings).await
        }
        Command::Migrate => {
            api::state::prepare_database(&settings).await?;
            tracing::info!("database ready");
            Ok(())
        }
        Command::GrantRole { email, role } => grant_role(settings, &email, &role).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let addr = settings.http_addr;
    let roles = settings.roles;
    let pool = api::state::prepare_database(&settings)
        .await
        .context("preparing the database")?;
    let exchange = api::state::exchange_from_settings(&settings)?;
    let state = api::state::build_state(settings, pool, exchange)?;
    let shutdown = CancellationToken::new();
    let workers = api::state::start_workers(&state, shutdown.clone());
    tracing::info!(
        api = roles.api,
        projector = roles.projector,
        kafka_mirror = roles.kafka_mirror,
        publisher = roles.publisher,
        runner = roles.runner,
        "roles started"
    );
    if roles.api {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
    } else {
        shutdown_signal().await;
    }
    // Workers finish the batch in hand; a batch cut short is rolled back
    // with its checkpoint, so the bound only limits how long we wait.
    shutdown.cancel();
    let drained = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures::future::join_all(workers),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("workers did not stop within 10 s; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn grant_role(settings: Settings, email: &str, role: &str) -> anyhow::Result<()> {
    let role = Role::parse(role).context("role must be user, admin or auditor")?;
    let pool = api::state::prepare_database(&settings).await?;
    let exchange = api::state::exchange_from_settings(&settings)?;
    let state = api::state::build_state(settings, pool, exchange)?;
    let metadata =
        CommandMetadata::new("cli", Some(Actor::System)).with_command_type("user.assign_role");
    let (user_id, position) = api::operator::grant_role(&state, email, role, &metadata).await?;
    println!(
        "granted {} to {email} ({user_id}) at position {position}",
        role.as_str()
    );
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; the server then stops accepting and
/// finishes the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
