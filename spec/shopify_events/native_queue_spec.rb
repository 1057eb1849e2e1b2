# frozen_string_literal: true

require "timeout"

RSpec.describe ShopifyEvents::Native::Queue do
  let(:queue) { described_class.open_or_create(spec_queue_key, 0o600) }

  it "returns nil from receive when nothing arrives within the timeout" do
    expect(queue.receive(0.05)).to be_nil
  end

  it "releases the GVL while receive waits, so other threads run" do
    waiter = Thread.new { queue.receive(nil) }
    counter = 0
    deadline = Time.now + 0.2
    counter += 1 while Time.now < deadline
    queue.try_send("wake")

    expect(waiter.value).to eq("wake")
    expect(counter).to be > 10_000
  end

  it "lets Timeout interrupt a waiting receive" do
    started = Time.now
    expect { Timeout.timeout(0.1) { queue.receive(nil) } }.to raise_error(Timeout::Error)
    expect(Time.now - started).to be < 2
  end

  it "lets Thread#kill end a waiting receive" do
    waiter = Thread.new { queue.receive(nil) }
    sleep 0.05 until waiter.status == "sleep" || waiter.status == "run"
    sleep 0.05
    waiter.kill
    expect(waiter.join(2)).to eq(waiter)
    expect(waiter.status).to be(false)
  end

  it "reports depth, bytes and capacity" do
    queue.try_send("abc")
    expect(queue.stat).to include(depth: 1, bytes: 3, capacity: Integer(File.read("/proc/sys/kernel/msgmnb")))
  end

  it "raises QueueNotFound for a key with no queue" do
    expect { described_class.open(spec_queue_key) }.to raise_error(ShopifyEvents::QueueNotFound)
  end

  it "rejects malformed envelopes with DecodeError" do
    expect { ShopifyEvents::Event.decode("not an envelope") }.to raise_error(ShopifyEvents::DecodeError, /malformed/)
  end
end
