//! `muckard`: the Muckard ledger service and its operator commands (the
//! crate's library holds the parts; this is the command line).

use std::future::IntoFuture;

use anyhow::Context;
use clap::{Parser, Subcommand};
use muckard::settings::{Roles, Settings};
use muckard::{operator, telemetry, wiring};
use tokio_util::sync::CancellationToken;

use command_side::CommandMetadata;
use domain::{Actor, Role};

#[derive(Parser)]
#[command(
    name = "muckard",
    version,
    about = "The Muckard ledger: event-sourced back end of the Muckard trading-bot platform",
    after_help = muckard::settings::help_text()
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
        /// Comma-separated roles to run (all: every one of them in this
        /// process). Overrides MUCKARD_ROLES.
        #[arg(
            long,
            value_delimiter = ',',
            value_parser = clap::builder::PossibleValuesParser::new(Roles::EACH)
        )]
        roles: Vec<String>,
    },
    /// As the owner (MIGRATION_DATABASE_URL, else DATABASE_URL): create the
    /// database if missing, apply the migrations, grant muckard_app to
    /// MUCKARD_APP_LOGINS and muckard_auditor to MUCKARD_AUDITOR_LOGINS,
    /// then exit.
    Migrate,
    /// The service's keys: `keys public` prints the public key audit
    /// reports are signed with (what a verifier needs).
    Keys {
        #[command(subcommand)]
        which: KeysCommand,
    },
    /// Sign a checkpoint of the log at its head now and publish it to the
    /// Kafka topic of checkpoints and, with --dir or ANCHOR_DIR, into that
    /// directory: what `muckard-replay verify --anchors kafka|DIR` checks
    /// the log against.
    Anchor {
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Do not publish to Kafka (only into the directory).
        #[arg(long)]
        no_kafka: bool,
    },
    /// Grant a role to a registered user, e.g. the first admin. The grant
    /// is recorded as a `user.role_assigned` event by the system actor.
    GrantRole {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The role to grant.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str)))]
        role: String,
    },
    /// Erase a user's personal data (crypto-shredding): records
    /// `user.erased` by the system actor and destroys the user's data key,
    /// as `POST /api/v1/admin/users/{user_id}/erase` does. Repeating it
    /// changes nothing and finishes an erasure a crash interrupted.
    EraseUser {
        /// The user's id (their email is not needed, and is gone after).
        #[arg(long)]
        user_id: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// The Ed25519 public key of audit reports, as JSON: algorithm, key_id,
    /// public_key (hex).
    Public,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = telemetry::init(telemetry::format_from_env());
    let settings = Settings::from_env().context("reading settings from the environment")?;
    match cli.command.unwrap_or(Command::Serve { roles: Vec::new() }) {
        Command::Serve { roles } => {
            let mut settings = settings;
            if !roles.is_empty() {
                settings.roles = Roles::parse(&roles.join(","))
                    .map_err(|reason| anyhow::anyhow!("--roles: {reason}"))?;
            }
            serve(settings).await
        }
        Command::Migrate => {
            wiring::migrate_database(&settings).await?;
            tracing::info!("database ready");
            Ok(())
        }
        Command::GrantRole { email, role } => grant_role(settings, &email, &role).await,
        Command::EraseUser { user_id } => erase_user(settings, user_id).await,
        Command::Anchor { dir, no_kafka } => {
            let to = wiring::AnchorDestinations {
                kafka: !no_kafka,
                dir: dir.or_else(|| settings.anchor_dir.clone()),
            };
            anyhow::ensure!(
                to.kafka || to.dir.is_some(),
                "--no-kafka needs --dir or ANCHOR_DIR"
            );
            let pool = wiring::serving_pool(&settings).await?;
            let checkpoint = wiring::anchor_once(&settings, &pool, &to, None).await?;
            println!(
                "signed checkpoint at {}: {} events in {} streams, digest {}",
                checkpoint.position, checkpoint.events, checkpoint.streams, checkpoint.digest
            );
            Ok(())
        }
        Command::Keys {
            which: KeysCommand::Public,
        } => {
            let signer = projections::audit::signing::AuditSigner::from_seed(
                settings.audit_signing_key.expose(),
            )?;
            println!("{}", serde_json::to_string_pretty(&signer.public_key())?);
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let addr = settings.http_addr;
    let roles = settings.roles;
    let grace = settings.shutdown_grace;
    let pool = wiring::serving_pool(&settings)
        .await
        .context("preparing the database")?;
    let exchange = wiring::exchange_from_settings(&settings)?;
    if roles.api
        && settings.environment == muckard::settings::Environment::Production
        && settings.mail.smtp_url.is_none()
    {
        anyhow::bail!(
            "SMTP_URL is required when MUCKARD_ENV=production for the api role (it mails the \
             verification and reset codes)"
        );
    }
    let state = wiring::build_state(&settings, pool, exchange)?;
    if roles.api {
        // An erasure whose process died between `user.erased` and the
        // key's destruction is finished before anything is served.
        let finished = state
            .commands
            .finish_interrupted_erasures()
            .await
            .context("finishing interrupted erasures")?;
        if finished > 0 {
            tracing::warn!(finished, "finished erasures a crash had interrupted");
        }
        state
            .commands
            .reconcile_accounts()
            .await
            .context("bringing account flags back to the log")?;
    }
    let shutdown = CancellationToken::new();
    let workers = wiring::start_workers(&settings, &state, shutdown.clone());
    tracing::info!(
        api = roles.api,
        projector = roles.projector,
        kafka_mirror = roles.kafka_mirror,
        publisher = roles.publisher,
        runner = roles.runner,
        "roles started"
    );
    // Every process serves HTTP: the API role the whole API, the others
    // /health, /ready and /metrics for their orchestrator and scraper.
    let app = if roles.api {
        api::app(state)
    } else {
        api::operations_app(state)
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
    let stop_accepting = CancellationToken::new();
    let mut server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
        .into_future(),
    );
    tokio::select! {
        _ = shutdown_signal() => {}
        ended = &mut server => {
            shutdown.cancel();
            ended.context("the HTTP server task")??;
            anyhow::bail!("the HTTP server stopped on its own");
        }
    }
    // Stop accepting; requests in flight finish (their commands commit or
    // roll back as a whole), within the grace period.
    stop_accepting.cancel();
    if tokio::time::timeout(grace, &mut server).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "requests still in flight after the grace period; stopping anyway"
        );
        server.abort();
    }
    // Then the workers finish the batch in hand and flush their producers;
    // a batch cut short is rolled back with its checkpoint.
    shutdown.cancel();
    let drained = tokio::time::timeout(grace, futures::future::join_all(workers)).await;
    if drained.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "workers did not stop within the grace period; exiting anyway"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// The state an operator command runs its command through, on a prepared
/// database.
async fn operator_state(settings: &Settings) -> anyhow::Result<api::AppState> {
    let pool = wiring::prepare_database(settings).await?;
    let exchange = wiring::exchange_from_settings(settings)?;
    wiring::build_state(settings, pool, exchange)
}

async fn grant_role(settings: Settings, email: &str, role: &str) -> anyhow::Result<()> {
    let role = Role::parse(role).context("role must be user, support, admin or auditor")?;
    let state = operator_state(&settings).await?;
    let metadata =
        CommandMetadata::new("cli", Some(Actor::System)).with_command_type("user.assign_role");
    let (user_id, position) = operator::grant_role(&state.commands, email, role, &metadata).await?;
    println!(
        "granted {} to {email} ({user_id}) at position {position}",
        role.as_str()
    );
    Ok(())
}

async fn erase_user(settings: Settings, user_id: uuid::Uuid) -> anyhow::Result<()> {
    let state = operator_state(&settings).await?;
    let metadata = CommandMetadata::new("cli", Some(Actor::System)).with_command_type("user.erase");
    let position = state
        .commands
        .erase_user(Actor::System, user_id, &metadata)
        .await?;
    println!("erased user {user_id} at position {position}");
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
