# frozen_string_literal: true

require "tmpdir"
require "shopify_events/transports/socket"

RSpec.describe ShopifyEvents::Transports::Socket do
  let(:log) { StringIO.new }
  let(:nowhere) { "unix://#{Dir.tmpdir}/shopify-events-nobody-#{Process.pid}.sock" }

  def config(proxy)
    ShopifyEvents::Configuration.new.tap do |c|
      c.transport = :socket
      c.proxy = proxy
      c.logger = Logger.new(log)
    end
  end

  it "refuses a missing or malformed SHOPIFY_EVENTS_PROXY, naming the variable and the accepted forms" do
    [nil, "", "localhost", "http://127.0.0.1:1/", "unix://relative"].each do |proxy|
      expect { described_class.new(config(proxy)) }
        .to raise_error(ShopifyEvents::ConfigurationError, %r{SHOPIFY_EVENTS_PROXY.*tcp://HOST:PORT.*unix:///PATH})
    end
  end

  it "is built from the environment" do
    config = ShopifyEvents::Configuration.from_env(
      "SHOPIFY_EVENTS_TRANSPORT" => "socket", "SHOPIFY_EVENTS_PROXY" => "tcp://127.0.0.1:9"
    )
    transport = ShopifyEvents::Transports.build(config)
    expect(transport.stats).to include(transport: :socket, proxy: "tcp://127.0.0.1:9")
  end

  it "emit only buffers: it returns an id while no proxy is reachable, and flush reports false" do
    transport = described_class.new(config(nowhere))
    id = transport.emit("socket.events", { a: 1 }, nil, nil)
    expect(id).to match(/\A\h{8}-\h{4}-7\h{3}-\h{4}-\h{12}\z/)
    expect(transport.flush(0.2)).to be(false)
    expect(transport.stats).to include(emitted: 1, acked: 0, buffered: 1)
    expect(transport.stats[:last_error]).to include("nobody")
  end

  it "drops, counts and logs once per burst when the buffer is full; emit! raises QueueFull" do
    transport = described_class.new(config(nowhere), max_buffered_events: 3)
    3.times { expect(transport.emit("socket.events", "x", nil, nil)).not_to be_nil }
    expect(transport.emit("socket.events", "x", nil, nil)).to be_nil
    expect(transport.emit("socket.events", "x", nil, nil)).to be_nil
    expect(transport.stats).to include(dropped: 2, buffer_full: 2)
    expect(log.string.scan("dropping events").size).to eq(1)
    expect(log.string).to include("buffer is full")
    expect { transport.emit!("socket.events", "x", nil, nil) }
      .to raise_error(ShopifyEvents::QueueFull, /not yet acknowledged by the proxy/)
  end

  it "still raises for programming errors" do
    transport = described_class.new(config(nowhere))
    expect { transport.emit("bad topic!", "x", nil, nil) }.to raise_error(ShopifyEvents::InvalidTopic)
    expect { transport.emit("ok", Object.new, nil, nil) }.to raise_error(TypeError)
  end

  it "releases the GVL while flush waits" do
    transport = described_class.new(config(nowhere))
    transport.emit("socket.events", "x", nil, nil)
    ticks = 0
    counter = Thread.new { loop { ticks += 1 } }
    expect(transport.flush(0.3)).to be(false)
    counter.kill
    expect(ticks).to be > 1000
  end

  it "ShopifyEvents.flush waits through the configured transport" do
    ShopifyEvents.configure do |c|
      c.transport = :socket
      c.proxy = nowhere
      c.logger = Logger.new(log)
    end
    ShopifyEvents.emit("socket.events", "x")
    expect(ShopifyEvents.flush(0.1)).to be(false)
  end
end
