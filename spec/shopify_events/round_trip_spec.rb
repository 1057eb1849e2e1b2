# frozen_string_literal: true

# What every transport that hands events on (sysv, spool) must do: the
# envelope read back where the drain reads it decodes to the emitted event.
RSpec.shared_examples "a round trip" do
  it "hands on one envelope that decodes to the emitted event" do
    before = Time.now
    id = ShopifyEvents.emit("checkout.completed", "hello", key: "shop-1", headers: { "trace" => "abc" })

    events = sink.events
    expect(events.size).to eq(1)
    event = events.first
    expect(event.id).to eq(id)
    expect(event.topic).to eq("checkout.completed")
    expect(event.payload).to eq("hello")
    expect(event.key).to eq("shop-1")
    expect(event.headers).to eq("trace" => "abc")
    expect(event.json?).to be(false)
    expect(event.time).to be_between(before - 1, Time.now + 1)
  end

  it "returns a UUIDv7 event id that sorts by emit time" do
    ids = Array.new(50) { ShopifyEvents.emit("t", "x") }
    expect(ids).to all(match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/))
    expect(ids.uniq.size).to eq(50)
    # The time part (milliseconds and the 12 sub-millisecond bits) never
    # goes back; ids of one microsecond (the spool transport emits several
    # in one) differ in their random bits only.
    times = ids.map { |id| id[0, 18] }
    expect(times.sort).to eq(times)
  end

  it "sends a String payload as its exact bytes, NUL bytes and invalid UTF-8 included" do
    payload = (+"\x00\xFF\xFEabc\x00").force_encoding(Encoding::BINARY) * 20
    ShopifyEvents.emit("binary", payload, key: "\x00k".b)

    event = sink.events.first
    expect(event.payload.bytes).to eq(payload.bytes)
    expect(event.key.bytes).to eq("\x00k".bytes)
  end

  it "encodes Hash and Array payloads as JSON in Rust" do
    time = Time.utc(2024, 1, 2, 3, 4, 5, 678_901)
    payload = {
      user_id: 12_345, "action" => "checkout", amount: 42.5, tags: %w[a b c], ok: true, off: false,
      none: nil, sym: :value, at: time, big: 2**70, nested: { list: [1, [2, { deep: "x" }]] },
      text: "quote\" backslash\\ newline\n tab\t é ✓"
    }
    ShopifyEvents.emit("json", payload)
    ShopifyEvents.emit("json", [1, "two", 3.25])

    hash_event, array_event = sink.events
    expect(hash_event.json?).to be(true)
    expect(hash_event.data).to eq(
      "user_id" => 12_345, "action" => "checkout", "amount" => 42.5, "tags" => %w[a b c], "ok" => true,
      "off" => false, "none" => nil, "sym" => "value", "at" => "2024-01-02T03:04:05.678901Z", "big" => 2**70,
      "nested" => { "list" => [1, [2, { "deep" => "x" }]] }, "text" => "quote\" backslash\\ newline\n tab\t é ✓"
    )
    expect(array_event.data).to eq([1, "two", 3.25])
  end

  it "produces the same JSON as JSON.generate for plain data" do
    payload = { user_id: 12_345, action: "checkout", shop: "example.myshopify.com", amount: 42.5, tags: %w[a b c] }
    ShopifyEvents.emit("json", payload)

    expect(sink.events.first.payload).to eq(JSON.generate(payload))
  end

  it "accepts Symbol topics and Integer or Symbol keys" do
    ShopifyEvents.emit(:orders, "x", key: 42)
    ShopifyEvents.emit("orders", "y", key: :shop)

    expect(sink.events.map { |e| [e.topic, e.key] }).to eq([%w[orders 42], %w[orders shop]])
  end

  it "keeps a present empty key apart from no key" do
    ShopifyEvents.emit("t", "x", key: "")
    ShopifyEvents.emit("t", "y")

    expect(sink.events.map(&:key)).to eq(["", nil])
  end
end

RSpec.describe "ShopifyEvents.emit over the sysv transport" do
  let!(:sink) { use_transport(:sysv) }

  include_examples "a round trip"

  it "looks the queue up again after it was removed and recreated" do
    ShopifyEvents.emit("t", "before")
    sink.queue.remove
    ShopifyEvents.emit("t", "after")

    reopened = ShopifyEvents::Native::Queue.open(ShopifyEvents.config.queue_key)
    expect(drain_events(reopened).map(&:payload)).to eq(["after"])
    expect(ShopifyEvents.stats).to include(reopened: 1, emitted: 2)
  end
end

RSpec.describe "ShopifyEvents.emit over the spool transport" do
  let!(:sink) { use_transport(:spool) }

  include_examples "a round trip"

  it "writes the envelopes into this process's own spool file, which no queue is involved in" do
    3.times { |i| ShopifyEvents.emit("t", "e#{i}") }

    files = Dir.children(sink.spool_dir)
    expect(files.size).to eq(1)
    expect(files.first).to match(/\A#{format("%08x", sink.key)}-\h{16}-0000000000\.seg\z/)
    expect(sink.events.map(&:payload)).to eq(%w[e0 e1 e2])
    expect { ShopifyEvents::Native::Queue.open(sink.key) }.to raise_error(ShopifyEvents::QueueNotFound)
  end

  it "takes an envelope encoded earlier (send_envelope) as it is, with its id, and holds it to max_event_bytes" do
    envelope = ShopifyEvents::Native.encode("later", "deferred", "k", nil)
    id = ShopifyEvents::Event.decode(envelope).id

    expect(ShopifyEvents.transport.send_envelope(envelope)).to eq(id)
    expect(ShopifyEvents.transport.send_envelope!(envelope)).to eq(id)
    expect { ShopifyEvents.transport.send_envelope("garbage") }.to raise_error(ShopifyEvents::DecodeError)
    expect(sink.events.map { |e| [e.id, e.payload, e.key] }).to eq([[id, "deferred", "k"]] * 2)
    expect(ShopifyEvents.transport.envelope_limit).to eq(1 << 20)
  end
end
