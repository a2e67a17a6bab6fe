//! W3C trace context (`traceparent`) for every request.
//!
//! A request that carries a valid `traceparent` continues that trace: it
//! keeps the trace id and flags and gets a span id of its own. Any other
//! request starts a new trace. Either way the request's context goes into
//! its extensions (with its [`RequestId`]) before the handlers see it, so
//! the `traceparent` stored in each event's metadata, and from there copied
//! into the Kafka and AMQP headers, names this request's span.

use rand::RngCore;

/// The id of a request: the caller's `x-request-id`, or a new one. In the
/// request's extensions, and echoed on the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    pub flags: String,
}

impl TraceContext {
    /// The context of a request whose caller sent `header` (if any).
    pub fn for_request(header: Option<&str>) -> Self {
        let span_id = random_hex(8);
        match header.and_then(parse) {
            Some((trace_id, flags)) => Self {
                trace_id,
                span_id,
                flags,
            },
            None => Self {
                trace_id: random_hex(16),
                span_id,
                flags: "01".to_string(),
            },
        }
    }

    /// The context of `span` when spans are exported (its ids are then
    /// the exported span's), else [`TraceContext::for_request`].
    pub fn of_span(span: &tracing::Span, header: Option<&str>) -> Self {
        event_log::trace::continue_trace(span, header);
        match event_log::trace::traceparent_of(span)
            .as_deref()
            .and_then(split)
        {
            Some(context) => context,
            None => Self::for_request(header),
        }
    }

    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// The trace id and flags of a well-formed version-00 `traceparent`.
fn parse(header: &str) -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    let context = event_log::trace::parent_context(header)?;
    let span = context.span();
    let parent = span.span_context();
    Some((
        parent.trace_id().to_string(),
        format!("{:02x}", parent.trace_flags().to_u8()),
    ))
}

fn split(traceparent: &str) -> Option<TraceContext> {
    let mut parts = traceparent.split('-').skip(1);
    Some(TraceContext {
        trace_id: parts.next()?.to_string(),
        span_id: parts.next()?.to_string(),
        flags: parts.next()?.to_string(),
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_parent_is_continued_with_a_new_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::for_request(Some(parent));
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(context.span_id, "00f067aa0ba902b7");
        assert_eq!(context.flags, "01");
        assert_eq!(parse(&context.header()).unwrap().0, context.trace_id);
    }

    #[test]
    fn a_missing_or_malformed_parent_starts_a_new_trace() {
        for header in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            let context = TraceContext::for_request(header);
            assert_eq!(context.trace_id.len(), 32, "{header:?}");
            assert_ne!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(parse(&context.header()).is_some());
        }
    }
}
