# frozen_string_literal: true

module ShopifyEvents
  # The current OpenTelemetry span as W3C trace context headers, read through
  # the OpenTelemetry API (`OpenTelemetry::Trace.current_span.context`) in
  # the format of its TraceContext propagator.
  module TraceContext
    SAMPLED = "01"
    NOT_SAMPLED = "00"

    # `{"traceparent" => ..., "tracestate" => ...}` (tracestate only when
    # not empty), or nil without a valid current span.
    def self.headers
      context = ::OpenTelemetry::Trace.current_span.context
      return nil unless context.valid?

      flags = context.trace_flags.sampled? ? SAMPLED : NOT_SAMPLED
      headers = { "traceparent" => "00-#{context.hex_trace_id}-#{context.hex_span_id}-#{flags}" }
      tracestate = context.tracestate
      headers["tracestate"] = tracestate.to_s unless tracestate.nil? || tracestate.empty?
      headers
    end
  end
end
