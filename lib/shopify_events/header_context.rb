# frozen_string_literal: true

require "shopify_events/request_context"
require "shopify_events/trace_context"

module ShopifyEvents
  # The headers added to every event, in this order, later ones winning:
  #
  # 1. `default_headers`: a Hash, or a callable returning one at each emit;
  # 2. the current Rails request id (`request_id_header`, "request_id"), set
  #    by RequestContext's middleware for the duration of a request;
  # 3. W3C `traceparent` and `tracestate` of the current OpenTelemetry span
  #    (`trace_context`), when the OpenTelemetry API is loaded;
  # 4. the headers passed to `emit`.
  #
  # Symbol names become Strings so an explicit header replaces a default of
  # the same name instead of repeating it. Built when the transport is built:
  # with none of the above it is nil and emit pays nothing for it.
  class HeaderContext
    # Returns a context for `config`, or nil when it would never add a header.
    def self.build(config)
      request_id = config.request_id_header if RequestContext.installed?
      trace = config.trace_context && defined?(::OpenTelemetry::Trace) ? true : false
      return nil if config.default_headers.nil? && request_id.nil? && !trace

      new(config.default_headers, request_id: request_id, trace: trace)
    end

    def initialize(defaults, request_id:, trace:)
      @static = defaults.is_a?(Hash) && !defaults.empty? ? defaults : nil
      @dynamic = defaults.respond_to?(:call) ? defaults : nil
      @request_id = request_id
      @trace = trace
    end

    # The headers for one event: the context's merged with `explicit`.
    # Returns a new Hash, or `explicit` itself when the context adds nothing.
    def call(explicit)
      headers = own_headers
      return explicit if headers.empty?
      return headers if explicit.nil?
      return explicit unless explicit.is_a?(Hash) # emit raises the TypeError naming it

      merge(headers, explicit)
    end

    private

    def own_headers
      headers = {}
      merge(headers, @static) if @static
      merge(headers, dynamic_headers) if @dynamic
      RequestContext.add_request_id(headers, @request_id) if @request_id
      TraceContext.add(headers) if @trace
      headers
    end

    def dynamic_headers
      headers = @dynamic.call
      return headers if headers.nil? || headers.is_a?(Hash)

      raise TypeError, "default_headers returned #{headers.inspect} (#{headers.class}); it must return a Hash " \
                       "of header names to values, or nil"
    end

    def merge(headers, more)
      more&.each { |name, value| headers[name.is_a?(Symbol) ? name.name : name] = value }
      headers
    end
  end
end
