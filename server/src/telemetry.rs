//! The one place a tracing subscriber is installed; only binaries call it.
//!
//! Logs go to stdout (text or JSON, filtered by `RUST_LOG`). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! set, spans at info and above are also exported over OTLP (HTTP and
//! protobuf; the standard `OTEL_*` variables apply: `OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, ...): a
//! request's span, its command and append, and the spans of the
//! subscribers and the bot runner that handle its events, which continue
//! its trace through the `traceparent` in the events' metadata and the
//! messages' headers (`event_log::trace`). Unset: nothing is exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::LogFormat;

/// The variables `.env.example` documents that the telemetry reads itself
/// (with the other standard `OTEL_*` ones), not the settings.
pub const READ_BY_TELEMETRY: &[&str] = &[
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
];

/// The log format named by `LOG_FORMAT`, read before the other settings so
/// that reading them can already log.
pub fn format_from_env() -> LogFormat {
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Keeps the span exporter; dropping it sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("muckard: flushing the last spans failed: {error}");
            }
        }
    }
}

/// Whether the environment asks for spans to be exported.
fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}

fn otlp_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|error| format!("the OTLP exporter: {error}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("muckard");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

pub fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colours)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![logs];
    let mut failure = None;
    let provider = if otlp_configured() {
        match otlp_provider() {
            Ok(provider) => {
                layers.push(
                    tracing_opentelemetry::layer()
                        .with_tracer(provider.tracer("muckard"))
                        .with_filter(LevelFilter::INFO)
                        .boxed(),
                );
                Some(provider)
            }
            Err(error) => {
                failure = Some(error);
                None
            }
        }
    } else {
        None
    };
    // A second init (tests, embedded use) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    if let Some(error) = failure {
        tracing::error!(%error, "spans are not exported");
    }
    if installed && provider.is_some() {
        event_log::trace::set_exporting(true);
        tracing::info!("spans are exported over OTLP");
    }
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}
