//! `/ready`: whether this process can do its work, dependency by
//! dependency, with each subscriber's lag.
//!
//! A dependency is checked only when a role of this process uses it:
//! PostgreSQL always, Kafka for the `kafka-mirror` role, RabbitMQ for the
//! `publisher` and `runner` roles. The binary hands in a
//! [`DependencyProbe`] for each broker its roles use (this crate knows no
//! broker). The answer is 503 while any of them is down. Checks run when asked, at most once per second however many
//! callers ask (one caller probes, the others share its answer), and each
//! is bounded by `READY_CHECK_TIMEOUT_MS`, so `/ready` never hangs on a
//! broker that does not answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;
use utoipa::ToSchema;

/// How long one answer is reused.
const REUSE_FOR: Duration = Duration::from_secs(1);

/// What `/ready` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyReport {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `postgres`, `kafka` and `rabbitmq`.
    pub dependencies: BTreeMap<&'static str, DependencyStatus>,
    pub subscribers: Vec<SubscriberLag>,
    /// Where the rate limits are kept: shared through Redis, or per
    /// process (Redis not configured, or down). Never makes the process
    /// unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::LimitScope>,
}

impl ReadyReport {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// One dependency's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependencyStatus {
    /// `up`, `down`, or `not_used` by this process's roles.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One subscriber's distance from the head of the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriberLag {
    pub name: String,
    pub events_behind: i64,
    pub seconds_behind: f64,
}

/// One real round trip to a dependency, bounded by `timeout`; the error
/// says what failed.
#[async_trait]
pub trait DependencyProbe: Send + Sync {
    async fn check(&self, timeout: Duration) -> Result<(), String>;
}

pub struct Readiness {
    kafka: Option<Box<dyn DependencyProbe>>,
    rabbitmq: Option<Box<dyn DependencyProbe>>,
    timeout: Duration,
    last: Mutex<Option<(Instant, ReadyReport)>>,
}

impl Readiness {
    /// Probes PostgreSQL, and the brokers given (`None`: not used by this
    /// process's roles), each bounded by `timeout`.
    pub fn new(
        timeout: Duration,
        kafka: Option<Box<dyn DependencyProbe>>,
        rabbitmq: Option<Box<dyn DependencyProbe>>,
    ) -> Self {
        Self {
            kafka,
            rabbitmq,
            timeout,
            last: Mutex::new(None),
        }
    }

    /// The latest answer, probing again when it is older than a second.
    pub async fn report(&self, pool: &PgPool) -> ReadyReport {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < REUSE_FOR {
                return report.clone();
            }
        }
        let report = self.probe(pool).await;
        *last = Some((Instant::now(), report.clone()));
        report
    }

    async fn probe(&self, pool: &PgPool) -> ReadyReport {
        let timeout = self.timeout;
        let postgres = timed(async {
            match tokio::time::timeout(timeout, event_log::lag::all(pool)).await {
                Ok(Ok(lags)) => Ok(lags),
                Ok(Err(error)) => Err(format!("postgres: {error}")),
                Err(_) => Err(format!("postgres: no answer within {timeout:?}")),
            }
        });
        let kafka = async {
            match &self.kafka {
                Some(probe) => Some(timed(probe.check(timeout)).await),
                None => None,
            }
        };
        let rabbitmq = async {
            match &self.rabbitmq {
                Some(probe) => Some(timed(probe.check(timeout)).await),
                None => None,
            }
        };
        let ((postgres, postgres_ms), kafka, rabbitmq) = tokio::join!(postgres, kafka, rabbitmq);
        let mut dependencies = BTreeMap::new();
        let subscribers = match postgres {
            Ok(lags) => {
                dependencies.insert("postgres", DependencyStatus::up(postgres_ms));
                lags.into_iter()
                    .map(|lag| SubscriberLag {
                        name: lag.subscriber,
                        events_behind: lag.events_behind,
                        seconds_behind: lag.seconds_behind,
                    })
                    .collect()
            }
            Err(error) => {
                dependencies.insert("postgres", DependencyStatus::down(error));
                Vec::new()
            }
        };
        dependencies.insert("kafka", DependencyStatus::from_check(kafka));
        dependencies.insert("rabbitmq", DependencyStatus::from_check(rabbitmq));
        let ready = dependencies.values().all(|d| d.status != "down");
        if !ready {
            let down: Vec<&str> = dependencies
                .iter()
                .filter(|(_, d)| d.status == "down")
                .map(|(name, _)| *name)
                .collect();
            tracing::debug!(down = ?down, "not ready");
        }
        ReadyReport {
            status: if ready { "ready" } else { "not_ready" },
            dependencies,
            subscribers,
            rate_limit: None,
        }
    }
}

impl DependencyStatus {
    fn up(latency_ms: f64) -> Self {
        Self {
            status: "up",
            latency_ms: Some(latency_ms),
            error: None,
        }
    }

    fn down(error: String) -> Self {
        Self {
            status: "down",
            latency_ms: None,
            error: Some(error),
        }
    }

    fn from_check<T>(check: Option<(Result<T, String>, f64)>) -> Self {
        match check {
            None => Self {
                status: "not_used",
                latency_ms: None,
                error: None,
            },
            Some((Ok(_), latency_ms)) => Self::up(latency_ms),
            Some((Err(error), _)) => Self::down(error),
        }
    }
}

async fn timed<T>(check: impl std::future::Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let result = check.await;
    (result, started.elapsed().as_secs_f64() * 1000.0)
}
