# frozen_string_literal: true

require "tmpdir"
require "shopify_events/transports/log"
require "shopify_events/transports/socket"

# send_envelope / send_envelope!: an envelope encoded earlier (an event
# deferred to its commit, an outbox row) goes out as it is, through each
# transport's usual drop/raise policy.
RSpec.describe "send_envelope" do
  let(:log) { StringIO.new }
  let(:encoded) { ShopifyEvents::Native.encode_event("later.events", { n: 1 }, "k", { "h" => "v" }) }
  let(:id) { encoded.first }
  let(:envelope) { encoded.last }

  it "encode_event returns the id emit would return and the envelope it would send" do
    expect(id).to match(/\A\h{8}-\h{4}-7\h{3}-\h{4}-\h{12}\z/)
    event = ShopifyEvents::Event.decode(envelope)
    expect([event.id, event.topic, event.data, event.key, event.headers]).to eq([id, "later.events", { "n" => 1 }, "k",
                                                                                 { "h" => "v" }])
  end

  describe "sysv" do
    let!(:queue) { use_sysv_queue(logger: Logger.new(log)) }

    # The transport numbers what it accepts (the stamp, bytes 32..48, and
    # the CRC sealed again: docs/PROTOCOL.md); every other byte goes as it is.
    it "puts the envelope into the queue numbered, otherwise unchanged, and returns its id" do
      expect(ShopifyEvents.transport.send_envelope(envelope)).to eq(id)
      expect(ShopifyEvents.transport.send_envelope(envelope)).to eq(id)
      sent = [queue.try_receive, queue.try_receive]
      sent.each do |bytes|
        expect(bytes.bytesize).to eq(envelope.bytesize)
        expect(bytes.byteslice(0, 32)).to eq(envelope.byteslice(0, 32))
        expect(bytes.byteslice(48, bytes.bytesize - 52)).to eq(envelope.byteslice(48, envelope.bytesize - 52))
        expect(ShopifyEvents::Event.decode(bytes).id).to eq(id)
      end
      expect(envelope.byteslice(32, 16).unpack("Q<Q<")).to eq([0, 0])
      stamps = sent.map { |bytes| bytes.byteslice(32, 16).unpack("Q<Q<") }
      expect(stamps.map(&:first).uniq.size).to eq(1)
      expect(stamps.first.first).not_to eq(0)
      expect(stamps.map(&:last)).to eq([stamps.first.last, stamps.first.last + 1])
    end

    it "raises DecodeError, sending nothing, for bytes that are not one intact envelope" do
      [envelope.byteslice(0, envelope.bytesize - 1), "#{envelope}x", "garbage"].each do |bytes|
        expect { ShopifyEvents.transport.send_envelope(bytes) }.to raise_error(ShopifyEvents::DecodeError)
        expect { ShopifyEvents.transport.send_envelope!(bytes) }.to raise_error(ShopifyEvents::DecodeError)
      end
      damaged = envelope.dup.tap { |b| b.setbyte(40, b.getbyte(40) ^ 1) }
      expect { ShopifyEvents.transport.send_envelope(damaged) }.to raise_error(ShopifyEvents::DecodeError, /checksum/)
      expect(queue.try_receive).to be_nil
    end

    it "drops (counted, logged once) when the queue is full; send_envelope! raises QueueFull" do
      queue.capacity = 16_384
      results = Array.new(400) { ShopifyEvents.transport.send_envelope(envelope) }
      expect(results).to include(nil)
      expect(ShopifyEvents.stats[:dropped]).to eq(results.count(nil))
      expect(log.string.scan("dropping events").size).to eq(1)
      expect { ShopifyEvents.transport.send_envelope!(envelope) }.to raise_error(ShopifyEvents::QueueFull)
    end
  end

  it "socket: buffers the envelope for the proxy like an emitted frame" do
    config = ShopifyEvents::Configuration.new.tap do |c|
      c.transport = :socket
      c.proxy = "unix://#{Dir.tmpdir}/shopify-events-nobody-#{Process.pid}.sock"
      c.logger = Logger.new(log)
    end
    transport = ShopifyEvents::Transports::Socket.new(config, max_buffered_events: 1)
    expect(transport.send_envelope(envelope)).to eq(id)
    expect(transport.stats).to include(emitted: 1, buffered: 1)
    expect(transport.send_envelope(envelope)).to be_nil
    expect { transport.send_envelope!(envelope) }.to raise_error(ShopifyEvents::QueueFull)
    expect { transport.send_envelope("garbage") }.to raise_error(ShopifyEvents::DecodeError)
  end

  it "direct: produces the envelope to Kafka with its id and emit time",
     skip: (SpecTansu.available? ? false : "no tansu binary: run script/tansu install") do
    SpecTansu.run do |tansu|
      topic = tansu.create_topic("later.events", partitions: 1)
      ShopifyEvents.configure do |c|
        c.transport = :direct
        c.brokers = tansu.bootstrap
        c.kafka = { "compression.type" => "none" }
        c.logger = Logger.new(log)
      end
      time = ShopifyEvents::Event.decode(envelope).time
      sleep 0.01
      expect(ShopifyEvents.transport.send_envelope(envelope)).to eq(id)
      expect(ShopifyEvents.flush(20)).to be(true)
      record = SpecKafkaRecords.new(tansu.bootstrap).wait_for(topic, count: 1, partitions: 1).first
      expect(record.headers).to include("event_id" => id, "h" => "v")
      expect(record.timestamp_ms).to eq((time.to_r * 1000).floor)
    end
  end

  it "test and log: capture or log the event" do
    test = ShopifyEvents::Transports::Test.new
    expect(test.send_envelope(envelope)).to eq(id)
    expect(test.events.map(&:id)).to eq([id])
    logged = ShopifyEvents::Transports::Log.new(logger: Logger.new(log))
    expect(logged.send_envelope!(envelope)).to eq(id)
    expect(log.string).to include("emit later.events key=\"k\"", "id=#{id}")
  end
end
