# frozen_string_literal: true

# The sysv transport with a spool: what the queue cannot take (full, or an
# event larger than kernel.msgmax) goes to this process's spool file and
# `emit` returns the id as usual; once it spooled, the process keeps
# spooling until the drain acknowledged the spool, then uses the queue again.
RSpec.describe "the sysv transport's spool" do
  let(:log) { StringIO.new }
  let!(:sink) { use_transport(:sysv, logger: Logger.new(log)) }

  it "takes events into the spool when the queue is full: ids returned, counted, nothing dropped" do
    sink.queue.capacity = 16_384
    ids = Array.new(40) { |i| ShopifyEvents.emit("t", "#{i};#{"y" * 1000}") }

    expect(ids).to all(be_a(String))
    stats = ShopifyEvents.stats
    expect(stats).to include(transport: :sysv, spool_dir: sink.spool_dir, emitted: 40, dropped: 0, queue_full: 1,
                             spool_failures: 0, spooling: 1)
    expect(stats[:spooled]).to be_between(20, 39)
    queued = drain_events(sink.queue)
    envelopes = sink.spool_envelopes(ack: false)
    expect(stats[:spooled_bytes]).to eq(envelopes.sum(&:bytesize))
    spooled = envelopes.map { |bytes| ShopifyEvents::Event.decode(bytes) }
    expect((queued + spooled).map(&:id)).to eq(ids)
    expect(log.string).to be_empty
    expect(ShopifyEvents.flush).to be(true) # nothing to write under page_cache; interval's tail otherwise
  end

  it "keeps spooling while spooled events wait for the drain, then seals and uses the queue again" do
    sink.queue.capacity = 4096
    first = Array.new(5) { |i| ShopifyEvents.emit("t", "#{i};#{"a" * 1000}") }
    expect(drain_events(sink.queue).size).to eq(3) # the queue has room again...
    later = ShopifyEvents.emit("t", "later")
    expect(sink.queue.stat[:depth]).to eq(0) # ...but later events follow the spooled ones
    expect(ShopifyEvents.stats[:spooling]).to eq(1)

    spooled = sink.spool_envelopes(ack: true).map { |bytes| ShopifyEvents::Event.decode(bytes).id }
    expect(spooled).to eq(first[3..] + [later])
    after = ShopifyEvents.emit("t", "after the drain")
    expect(drain_events(sink.queue).map(&:id)).to eq([after])
    expect(ShopifyEvents.stats).to include(spooling: 0, spooled: 3)
  end

  it "accepts a 100 KiB and a 900 KiB event (above kernel.msgmax) and spools them intact" do
    msgmax = ShopifyEvents::Native.message_size_limit
    skip "kernel.msgmax is #{msgmax} here: these events would not need the spool" if msgmax > 100 * 1024

    payloads = [100 * 1024, 900 * 1024].map { |size| Random.bytes(size) }
    ids = payloads.map { |payload| ShopifyEvents.emit("big", payload, key: "k") }

    expect(ids).to all(be_a(String))
    expect(sink.queue.stat[:depth]).to eq(0)
    events = spooled_events(sink.spool_dir, sink.key)
    expect(events.map(&:id)).to eq(ids)
    expect(events.map { |e| e.payload.bytes }).to eq(payloads.map(&:bytes))
    expect(ShopifyEvents.stats).to include(spooled: 2, queue_full: 0)
  end

  it "refuses an event above max_event_bytes with PayloadTooLarge naming both limits" do
    msgmax = ShopifyEvents::Native.message_size_limit
    expect { ShopifyEvents.emit("t", "x" * (1 << 20)) }
      .to raise_error(ShopifyEvents::PayloadTooLarge,
                      /larger than max_event_bytes \(1048576; envelopes above kernel\.msgmax \(#{msgmax}\)/)
  end

  it "spools an envelope sent later (send_envelope: a deferred event) when the queue is full, keeping its id" do
    sink.queue.capacity = 4096
    envelopes = Array.new(3) { |i| ShopifyEvents::Native.encode("later", "#{i}#{"z" * 1500}", nil, nil) }
    ids = envelopes.map { |bytes| ShopifyEvents.transport.send_envelope(bytes) }

    expect(ids).to eq(envelopes.map { |bytes| ShopifyEvents::Event.decode(bytes).id })
    expect(ShopifyEvents.stats).to include(spooled: 1, dropped: 0)
    expect((drain_events(sink.queue) + spooled_events(sink.spool_dir, sink.key)).map(&:id)).to eq(ids)
    expect(ShopifyEvents.transport.envelope_limit).to eq(ShopifyEvents.config.max_event_bytes)
  end

  it "spools in a forked child into files of the child's own" do
    sink.queue.capacity = 4096
    2.times { ShopifyEvents.emit("t", "p" * 3000) } # the queue, then the spool
    pid = fork do
      spooled = ShopifyEvents.stats[:spooled] # counters are inherited, the spool is not
      ShopifyEvents.emit("t", "c" * 3000)
      exit!(ShopifyEvents.stats[:spooled] == spooled + 1 ? 0 : 1)
    end
    expect(Process.wait2(pid).last).to be_success

    files = Dir.children(sink.spool_dir).grep(/\.seg\z/)
    expect(files.size).to eq(2)
    expect(files.map { |f| f.split("-")[1] }.uniq.size).to eq(2) # two producers
    expect(spooled_events(sink.spool_dir, sink.key).map { |e| e.payload[0] }).to contain_exactly("p", "c")
  end
end
