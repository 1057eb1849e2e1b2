# frozen_string_literal: true

# Headers added to every event: default_headers, the Rails request id and
# the W3C trace context of the current OpenTelemetry span.
RSpec.describe "default, request and trace headers" do
  before do
    ShopifyEvents.configure { |c| c.transport = :test }
  end

  after do
    ShopifyEvents::RequestContext.installed = false
    Object.send(:remove_const, :OpenTelemetry) if defined?(::OpenTelemetry)
  end

  def configure(&block)
    ShopifyEvents.configure(&block)
  end

  def emitted_headers(**options)
    transport = ShopifyEvents.transport
    transport.clear
    ShopifyEvents.emit("t", "x", **options)
    transport.events.first.headers
  end

  # A stand-in for the OpenTelemetry API (the opentelemetry-api gem is not
  # installable here), with the shape its documentation gives:
  # OpenTelemetry::Trace.current_span.context is a SpanContext with valid?,
  # hex_trace_id, hex_span_id, trace_flags.sampled? and tracestate
  # (empty?, to_s in the W3C format).
  def define_opentelemetry(span_context)
    Object.const_set(:OpenTelemetry, Module.new)
    OpenTelemetry.const_set(:Trace, Module.new)
    span = Struct.new(:context).new(span_context)
    OpenTelemetry::Trace.define_singleton_method(:current_span) { span }
  end

  def span_context(valid: true, sampled: true, tracestate: "")
    Struct.new(:valid, :hex_trace_id, :hex_span_id, :trace_flags, :tracestate) do
      def valid? = valid
    end.new(valid, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
            Struct.new(:sampled?).new(sampled),
            tracestate_of(tracestate))
  end

  # OpenTelemetry::Trace::Tracestate: to_s gives the W3C header value.
  def tracestate_of(text)
    Object.new.tap do |state|
      state.define_singleton_method(:to_s) { text }
      state.define_singleton_method(:empty?) { text.empty? }
    end
  end

  it "adds nothing, and emit stays on its fast path, when nothing is configured" do
    expect(ShopifyEvents::HeaderContext.build(ShopifyEvents.config)).to be_nil
    expect(emitted_headers).to eq({})
    ShopifyEvents.emit("t", "x")
    expect(ShopifyEvents).to be_plain_emit
  end

  it "adds default_headers to every event; explicit headers win, whatever the name's type" do
    configure { |c| c.default_headers = { service: "checkout", "region" => "eu" } }
    expect(emitted_headers).to eq("service" => "checkout", "region" => "eu")
    expect(emitted_headers(headers: { "service" => "billing", region: "us", extra: "1" }))
      .to eq("service" => "billing", "region" => "us", "extra" => "1")
  end

  it "calls a default_headers callable at each emit" do
    calls = 0
    configure { |c| c.default_headers = -> { { "n" => (calls += 1).to_s } } }
    expect([emitted_headers, emitted_headers]).to eq([{ "n" => "1" }, { "n" => "2" }])
  end

  it "raises a TypeError naming what a default_headers callable returned when it is not a Hash" do
    configure { |c| c.default_headers = -> { "service=checkout" } }
    expect { ShopifyEvents.emit("t", "x") }
      .to raise_error(TypeError, /default_headers returned "service=checkout" \(String\); it must return a Hash/)
  end

  it "rejects a default_headers setting that is neither a Hash nor callable" do
    expect { configure { |c| c.default_headers = "a=b" } }
      .to raise_error(ShopifyEvents::ConfigurationError, /default_headers must be a Hash or respond to #call/)
  end

  it "adds the request id during a Rails request (RequestContext middleware), and not after it" do
    ShopifyEvents::RequestContext.installed = true # what the Railtie does
    ShopifyEvents.reset!
    configure { |c| c.transport = :test }
    inside = nil
    app = ->(_env) { [200, {}, [(inside = emitted_headers(headers: { "kind" => "web" }))]] }
    ShopifyEvents::RequestContext.new(app).call("action_dispatch.request_id" => "req-1")
    expect(inside).to eq("request_id" => "req-1", "kind" => "web")
    expect(emitted_headers).to eq({})
    configure { |c| c.request_id_header = "x-request-id" }
    ShopifyEvents::RequestContext.new(->(_env) { [200, {}, [(inside = emitted_headers)]] })
                                 .call("action_dispatch.request_id" => "req-2")
    expect(inside).to eq("x-request-id" => "req-2")
  end

  it "adds W3C traceparent and tracestate of the current OpenTelemetry span" do
    define_opentelemetry(span_context(tracestate: "congo=t61rcWkgMzE"))
    ShopifyEvents.reset!
    configure { |c| c.transport = :test }
    expect(emitted_headers).to eq("traceparent" => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                  "tracestate" => "congo=t61rcWkgMzE")
    expect(emitted_headers(headers: { "traceparent" => "mine" })["traceparent"]).to eq("mine")
  end

  it "marks an unsampled span 00, and adds nothing without a valid span or with trace_context off" do
    define_opentelemetry(span_context(sampled: false))
    ShopifyEvents.reset!
    configure { |c| c.transport = :test }
    expect(emitted_headers).to eq("traceparent" => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")

    Object.send(:remove_const, :OpenTelemetry)
    define_opentelemetry(span_context(valid: false))
    ShopifyEvents.reset!
    configure { |c| c.transport = :test }
    expect(emitted_headers).to eq({})

    configure { |c| c.trace_context = false }
    expect(ShopifyEvents::HeaderContext.build(ShopifyEvents.config)).to be_nil
  end
end
