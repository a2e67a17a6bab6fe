//! How librdkafka's own reports reach the log.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// The context of every Kafka client this crate makes. While no broker
/// answers, librdkafka reports each failed connection attempt of each
/// client as an error, several a second, which buried the one line that
/// matters: the mirror warns, once per retry, that the broker is not
/// reachable (and `/ready` says so). Those reports go to debug; every other
/// report (a TLS or SASL failure, a broker refusing a request) keeps
/// librdkafka's level.
#[derive(Clone, Copy, Debug, Default)]
pub struct KafkaContext;

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if is_connection_failure(facility, message) {
            tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
            }
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if is_unreachable(&error) {
            tracing::debug!(target: "librdkafka", error = %error, reason, "kafka broker not reachable");
        } else {
            tracing::error!(target: "librdkafka", error = %error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// For the clients that only ask for metadata (`/ready`'s probe): nothing
/// is produced through them, so no delivery to report.
impl ProducerContext for KafkaContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _delivery: &DeliveryResult<'_>, _opaque: ()) {}
}

/// A broker that does not answer: refused, unresolvable, all down.
fn is_unreachable(error: &RdKafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// librdkafka's `FAIL` line for a connection that could not be made or
/// was lost (not one the broker refused for TLS or authentication).
fn is_connection_failure(facility: &str, message: &str) -> bool {
    facility == "FAIL"
        && [
            "Connection refused",
            "Failed to resolve",
            "Disconnected",
            "Connection reset",
            "timed out",
        ]
        .iter()
        .any(|cause| message.contains(cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_told_from_other_failures() {
        assert!(is_connection_failure(
            "FAIL",
            "127.0.0.1:19092/bootstrap: Connect to ipv4#127.0.0.1:19092 failed: Connection refused (after 0ms in state CONNECT)"
        ));
        assert!(!is_connection_failure(
            "FAIL",
            "broker:9093/bootstrap: SSL handshake failed: certificate verify failed"
        ));
        assert!(!is_connection_failure("CONFWARN", "Connection refused"));
        assert!(is_unreachable(&RdKafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_unreachable(&RdKafkaError::Global(
            RDKafkaErrorCode::Authentication
        )));
    }
}
