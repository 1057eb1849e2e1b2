# frozen_string_literal: true

require "open3"
require "rbconfig"

RSpec.describe "the direct transport" do
  tansu_skip = SpecTansu.available? ? false : "no tansu binary: run script/tansu install"
  let(:log) { StringIO.new }

  def use_direct(brokers:, **settings)
    ShopifyEvents.configure do |c|
      c.transport = :direct
      c.brokers = brokers
      c.flush_timeout = 0.5
      c.logger = Logger.new(log)
      settings.each { |name, value| c.public_send("#{name}=", value) }
    end
  end

  # A loopback port nobody listens on: librdkafka keeps retrying it.
  def unreachable
    "127.0.0.1:#{free_port}"
  end

  it "delivers events to Kafka and flush returns true once Kafka acknowledged them", skip: tansu_skip do
    SpecTansu.run do |tansu|
      tansu.create_topic("direct.events")
      use_direct(brokers: tansu.bootstrap)
      ids = (1..100).map { |i| ShopifyEvents.emit("direct.events", { i: i }, key: "k", headers: { "h" => "v" }) }
      expect(ids).to all(match(/\A\h{8}-\h{4}-7/))
      expect(ShopifyEvents.flush(20)).to be(true)
      expect(ShopifyEvents.stats).to include(transport: :direct, emitted: 100, delivered: 100, failed: 0, pending: 0)
      expect(tansu.consume("direct.events", count: 100).map { |r| r.value["i"] }).to match_array((1..100).to_a)
    end
  end

  it "delivers what a process emitted when it exits normally (bounded flush at exit)", skip: tansu_skip do
    SpecTansu.run do |tansu|
      tansu.create_topic("direct.exit")
      script = 'require "shopify_events"; 50.times { |i| ShopifyEvents.emit("direct.exit", { i: i }) }'
      env = { "SHOPIFY_EVENTS_TRANSPORT" => "direct", "SHOPIFY_EVENTS_BROKERS" => tansu.bootstrap,
              "SHOPIFY_EVENTS_FLUSH_TIMEOUT" => "20" }
      output, status = Open3.capture2e(env, RbConfig.ruby, "-I", File.join(SpecProcesses::ROOT, "lib"), "-e", script)
      expect(status).to be_success, output
      expect(tansu.consume("direct.exit", count: 50).map { |r| r.value["i"] }).to match_array((0...50).to_a)
    end
  end

  it "raises ConfigurationError naming SHOPIFY_EVENTS_BROKERS when no brokers are set" do
    ShopifyEvents.configure { |c| c.transport = :direct }
    expect { ShopifyEvents.emit("t", "x") }
      .to raise_error(ShopifyEvents::ConfigurationError, /SHOPIFY_EVENTS_BROKERS/)
  end

  it "raises ConfigurationError for a librdkafka setting librdkafka rejects" do
    use_direct(brokers: unreachable, kafka: { "no.such.setting" => "1" })
    expect { ShopifyEvents.emit("t", "x") }.to raise_error(ShopifyEvents::ConfigurationError, /no.such.setting/)
  end

  it "drops and counts when the buffer is full (emit), raises BufferFull (emit!), and logs once per burst" do
    use_direct(brokers: unreachable, direct_buffer: 2, kafka: { "queue.buffering.max.messages" => "1" })
    # librdkafka takes 1, the worker holds the 1 it refused, the buffer 2 more.
    results = Array.new(3) do
      Array.new(10) { ShopifyEvents.emit("direct.full", "x") }.tap { sleep 0.2 }
    end.flatten
    expect(results.compact.size).to eq(4)
    logged = log.string.scan("dropping events").size
    results.concat(Array.new(5) { ShopifyEvents.emit("direct.full", "x") })
    expect(results.last(5)).to all(be_nil)
    expect(ShopifyEvents.stats[:dropped]).to eq(results.count(nil))
    expect { ShopifyEvents.emit!("direct.full", "x") }.to raise_error(ShopifyEvents::BufferFull, /buffer full/)
    expect(logged).to be >= 1
    expect(log.string.scan("dropping events").size).to eq(logged) # one line per burst of drops
    expect(ShopifyEvents.flush(0.1)).to be(false)
  end

  it "raises PayloadTooLarge for an envelope above message.max.bytes, naming the limit" do
    use_direct(brokers: unreachable, kafka: { "message.max.bytes" => "1000" })
    expect { ShopifyEvents.emit("direct.big", "x" * 2000) }
      .to raise_error(ShopifyEvents::PayloadTooLarge, /1000-byte .*message\.max\.bytes/)
  end

  it "waits for Kafka in flush without holding the GVL" do
    use_direct(brokers: unreachable)
    ShopifyEvents.emit("direct.gvl", "x")
    flusher = Thread.new { ShopifyEvents.flush(0.5) }
    spins = 0
    spins += 1 while flusher.alive?
    expect(flusher.value).to be(false)
    expect(spins).to be > 10_000
  end

  it "ends a flush early when the thread is killed" do
    use_direct(brokers: unreachable)
    ShopifyEvents.emit("direct.kill", "x")
    flusher = Thread.new { ShopifyEvents.flush(30) }
    sleep 0.2
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    flusher.kill.join
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 1
  end

  it "writes librdkafka's errors to the configured logger, a repeated line once" do
    use_direct(brokers: unreachable)
    ShopifyEvents.emit("direct.log", "x")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    sleep 0.05 until log.string.include?("Connection refused") ||
                     Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    lines = log.string.lines.grep(/shopify_events direct: kafka: /)
    expect(lines).not_to be_empty, "nothing logged within 10s; log:\n#{log.string}"
    expect(lines.first).to match(/\AE, .*ERROR -- : shopify_events direct: kafka: .*Connection refused/)
    sleep 1.5 # librdkafka retries the connection meanwhile; the same line is counted, not repeated
    expect(log.string.lines.grep(/shopify_events direct: kafka: /).tally.values).to all(eq(1))
  end

  it "closes the replaced transport on reset!: its log thread ends and it takes no more events" do
    use_direct(brokers: unreachable)
    ShopifyEvents.emit("direct.close", "x")
    transport = ShopifyEvents.transport
    log_thread = transport.instance_variable_get(:@log_thread)
    ShopifyEvents.reset!
    expect(log_thread.join(5)).to eq(log_thread)
    expect { transport.emit!("direct.close", "x", nil, nil) }
      .to raise_error(ShopifyEvents::TransportError, /closed/)
  end
end
