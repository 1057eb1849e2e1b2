# frozen_string_literal: true

RSpec.describe ShopifyEvents::Transports::Test do
  before { ShopifyEvents.configure { |c| c.transport = :test } }

  it "captures emitted events decoded from their envelopes" do
    id = ShopifyEvents.emit("orders.created", { id: 1 }, key: "k", headers: { h: "v" })

    event = ShopifyEvents.transport.events.last
    expect(event).to have_attributes(id: id, topic: "orders.created", key: "k", headers: { "h" => "v" })
    expect(event.data).to eq("id" => 1)
    expect(ShopifyEvents.stats).to include(transport: :test, emitted: 1)
  end

  it "validates exactly as the sysv transport does" do
    expect { ShopifyEvents.emit("bad topic", "x") }.to raise_error(ShopifyEvents::InvalidTopic)
    expect { ShopifyEvents.emit!("t", { a: Float::NAN }) }.to raise_error(ArgumentError)
    expect { ShopifyEvents.emit("t", "x" * ShopifyEvents.config.max_event_bytes) }
      .to raise_error(ShopifyEvents::PayloadTooLarge, /max_event_bytes/)
    expect(ShopifyEvents.transport.events).to be_empty
  end

  it "holds events to sysv's limits: max_event_bytes with a spool, kernel.msgmax without" do
    limit = ShopifyEvents::Native.message_size_limit
    expect(ShopifyEvents.emit("t", "x" * limit)).to be_a(String)
    ShopifyEvents.configure { |c| c.spool_dir = "off" }
    expect { ShopifyEvents.emit("t", "x" * limit) }.to raise_error(ShopifyEvents::PayloadTooLarge, /kernel\.msgmax/)
  end

  it "clears captured events" do
    ShopifyEvents.emit("t", "x")
    ShopifyEvents.transport.clear
    expect(ShopifyEvents.transport.events).to be_empty
  end

  it "captures from many threads" do
    Array.new(8) { |t| Thread.new { 100.times { |i| ShopifyEvents.emit("t", "#{t}-#{i}") } } }.each(&:join)
    expect(ShopifyEvents.transport.events.map(&:payload).uniq.size).to eq(800)
  end
end
