# frozen_string_literal: true

module ShopifyEvents
  # The current OpenTelemetry span as W3C trace context headers, read through
  # the OpenTelemetry API (`OpenTelemetry::Trace.current_span.context`) in
  # the format of its TraceContext propagator.
  module TraceContext
    SAMPLED = "01"
    NOT_SAMPLED = "00"

    # [span context, traceparent, tracestate] of the last span seen: events
    # of one span reuse its header values (a SpanContext is immutable).
    @last = nil

    # Adds "traceparent" (and "tracestate" when not empty) to `headers`
    # while a valid span is current.
    def self.add(headers)
      context = ::OpenTelemetry::Trace.current_span.context
      last = @last
      last = @last = values(context).freeze unless last && last[0].equal?(context)
      return unless last[1]

      headers["traceparent"] = last[1]
      headers["tracestate"] = last[2] if last[2]
    end

    def self.values(context)
      return [context, nil, nil] unless context.valid?

      flags = context.trace_flags.sampled? ? SAMPLED : NOT_SAMPLED
      tracestate = context.tracestate
      [context, "00-#{context.hex_trace_id}-#{context.hex_span_id}-#{flags}".freeze,
       tracestate.nil? || tracestate.empty? ? nil : tracestate.to_s.freeze]
    end
  end
end
