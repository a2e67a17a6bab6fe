//! Trace context across the log: each event's metadata carries the W3C
//! `traceparent` of the span that appended it; whoever handles the event
//! later (a projector, the Kafka mirror, the RabbitMQ publisher, the bot
//! runner) makes a span that is a child of it, so one trace holds a
//! request and everything its events caused. Spans become OpenTelemetry
//! spans when the binary installs the exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`);
//! without it these are ordinary `tracing` spans and the ids fall back to
//! the caller's.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::RecordedEvent;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called by the binary once spans are exported: subscribers then make a
/// span per traced event they handle (not otherwise: nobody would see it).
pub fn set_exporting(exporting: bool) {
    EXPORTING.store(exporting, Ordering::Release);
}

pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

/// The remote parent a well-formed version-00 `traceparent` names.
pub fn parent_context(traceparent: &str) -> Option<Context> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return None;
    };
    let lower_hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if *version != "00"
        || !lower_hex(trace_id, 32)
        || !lower_hex(span_id, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context
        .is_valid()
        .then(|| Context::new().with_remote_span_context(context))
}

/// Makes `span` a child of `traceparent`'s span (nothing if it is absent
/// or malformed, or nothing exports spans).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(parent_context) {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of `span` as exported, if spans are exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// A span per traced event of a batch `subscriber` handles, each a child
/// of the span that appended its event; they end when dropped (after the
/// batch is committed or acknowledged). Empty unless spans are exported.
pub fn event_spans(subscriber: &str, events: &[RecordedEvent]) -> Vec<tracing::Span> {
    if !exporting() {
        return Vec::new();
    }
    events
        .iter()
        .filter_map(|event| {
            let parent = parent_context(event.metadata_str("traceparent")?)?;
            let span = tracing::info_span!(
                "handle event",
                otel.name = %format!("{subscriber} {}", event.event_type),
                subscriber = subscriber,
                event_type = %event.event_type,
                aggregate_id = %event.aggregate_id,
                position = %event.position,
            );
            let _ = span.set_parent(parent);
            Some(span)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_or_are_refused() {
        let context =
            parent_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = context.span();
        let parent = span.span_context();
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled());
        for wrong in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            assert!(parent_context(wrong).is_none(), "{wrong}");
        }
    }
}
