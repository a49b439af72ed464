//! A finished hop as an OpenTelemetry span, in the shape the OTLP exporter takes.
//!
//! Spans are built here directly, once the request is over, rather than through the SDK's
//! tracer: the proxy already knows everything a span holds only at the end, and an unsampled
//! request (most of them) then costs nothing but its sampling decision.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::sampling::Hop;

/// What a span says beyond its identifiers.
pub struct SpanFacts {
    pub kind: SpanKind,
    pub name: Cow<'static, str>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// `Some(description)` for a failed request.
    pub error: Option<String>,
    pub events: Vec<opentelemetry::trace::Event>,
}

pub fn span_data(hop: &Hop, facts: SpanFacts, scope: &InstrumentationScope) -> SpanData {
    let mut events = SpanEvents::default();
    events.events = facts.events;
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(hop.trace_id),
            SpanId::from_bytes(hop.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: hop.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: hop.parent.is_some(),
        span_kind: facts.kind,
        name: facts.name,
        start_time: facts.start,
        end_time: facts.end,
        attributes: facts.attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match facts.error {
            Some(description) => Status::error(description),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}
