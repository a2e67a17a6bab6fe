//! What every handler shares, and the HTTP settings the binary hands in.

use std::sync::Arc;
use std::time::Duration;

use command_side::CommandSide;
use projections::audit::signing::AuditSigner;
use sqlx::PgPool;

use crate::contracts::MessageContracts;
use crate::rate_limit::{RateLimitSettings, RateLimiter};
use crate::ready::Readiness;
use crate::tokens::JwtKeys;

/// What the HTTP layer needs to know; the binary parses it from the
/// environment with everything else (`muckard::settings`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub refresh_token_ttl: chrono::Duration,
    /// How long a query with `min_position` waits for its read model.
    pub query_wait_max: Duration,
    /// This process's name, sent on every response as
    /// `x-muckard-instance`.
    pub instance: String,
    /// Origins a browser may call the API from; empty sends no CORS
    /// headers.
    pub cors_allowed_origins: Vec<String>,
    /// Per-client limits on the `/api` routes.
    pub rate_limit: RateLimitSettings,
    /// `GET /api/v1/stream`: connections per user and heartbeats.
    pub live: crate::live::LiveSettings,
}

#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<CommandSide>,
    pub jwt: Arc<JwtKeys>,
    pub http: Arc<HttpSettings>,
    pub readiness: Arc<Readiness>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Signs audit reports; its public key is published.
    pub audit_signer: Arc<AuditSigner>,
    /// `/asyncapi.json` and the schemas it references.
    pub contracts: Arc<MessageContracts>,
    /// What `GET /api/v1/stream` reads from: one per process, started by
    /// the first stream.
    pub live: Arc<crate::live::LiveHub>,
    /// Tickers, balances and candles read from the exchange, cached
    /// briefly.
    pub market: Arc<crate::market::MarketData>,
}

impl AppState {
    /// The state of an HTTP front end over `commands`: tokens signed with
    /// `jwt`, dependencies probed by `readiness`. The binary registers the
    /// metrics (`api::metrics::init`) beside the workers' own.
    pub fn new(
        commands: Arc<CommandSide>,
        jwt: JwtKeys,
        http: HttpSettings,
        readiness: Readiness,
        audit_signer: AuditSigner,
        contracts: MessageContracts,
    ) -> Self {
        Self {
            rate_limiter: Arc::new(RateLimiter::shared_through(
                http.rate_limit.clone(),
                commands.shared_state(),
            )),
            live: Arc::new(crate::live::LiveHub::new(
                commands.pool.clone(),
                http.live.clone(),
            )),
            market: Arc::new(crate::market::MarketData::default()),
            commands,
            jwt: Arc::new(jwt),
            http: Arc::new(http),
            readiness: Arc::new(readiness),
            audit_signer: Arc::new(audit_signer),
            contracts: Arc::new(contracts),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.commands.pool
    }
}
