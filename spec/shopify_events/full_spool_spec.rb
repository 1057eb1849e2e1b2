# frozen_string_literal: true

# The drop policy where the spool is the last resort: only a full or
# unusable spool makes `emit` drop (counted, one log line per burst naming
# the spool directory and the fix) and `emit!` raise SpoolFull (a
# QueueFull) or SpoolError (a QueueError). The same for the sysv
# transport's overflow (behind a full queue) and the spool transport.
RSpec.shared_examples "a full spool" do
  # Emits until the spool refuses; returns the ids accepted.
  def fill
    ids = []
    while (id = ShopifyEvents.emit("t", "f" * 2000))
      ids << id
      raise "the spool never filled" if ids.size > 10_000
    end
    ids
  end

  it "makes emit return nil, count the drop and log once per burst, naming the directory and the fix" do
    fill
    results = Array.new(25) { ShopifyEvents.emit("t", "y" * 2000) }

    expect(results).to all(be_nil)
    expect(ShopifyEvents.stats).to include(dropped: 26)
    expect(ShopifyEvents.stats[:spool_failures]).to eq(26)
    expect(log.string.scan("dropping events").size).to eq(1)
    expect(log.string).to include("spool #{sink.spool_dir} is full").and include("raise spool_max_bytes")
  end

  it "makes emit! raise SpoolFull, a QueueFull, without counting a drop" do
    fill
    expect { ShopifyEvents.emit!("t", "y" * 2000) }.to raise_error(ShopifyEvents::SpoolFull, /is full/)
    expect { ShopifyEvents.emit!("t", "y" * 2000) }.to raise_error(ShopifyEvents::QueueFull)
    expect(ShopifyEvents.stats).to include(dropped: 1) # fill's last emit
  end

  it "keeps every event accepted before the spool filled, and takes events again once the drain freed it" do
    ids = fill
    expect(sink.events.map(&:id)).to eq(ids)
    sleep 1.1 # a writer that failed to create a segment tries again after a second
    expect(ShopifyEvents.emit("t", "ok")).to be_a(String)
    expect(log.string).to include("emitting again; 1 events dropped so far")
  end
end

RSpec.describe "a full spool" do
  let(:log) { StringIO.new }

  context "behind a full queue (sysv)" do
    let!(:sink) do
      use_transport(:sysv, logger: Logger.new(log), spool_max_bytes: 200 * 1024).tap do |s|
        s.queue.capacity = 16_384
      end
    end

    include_examples "a full spool"
  end

  context "of the spool transport" do
    let!(:sink) { use_transport(:spool, logger: Logger.new(log), spool_max_bytes: 200 * 1024) }

    include_examples "a full spool"
  end
end

RSpec.describe "a missing spool directory" do
  let(:log) { StringIO.new }

  def expect_one_line_and_counted_drops(dir)
    expect(Array.new(20) { ShopifyEvents.emit("t", "x" * 2000) }.compact.size).to be < 20
    expect(ShopifyEvents.stats[:dropped]).to be_positive
    expect(log.string.scan("dropping events").size).to eq(1)
    expect(log.string).to include("spool directory #{dir}: No such file or directory")
      .and include("create it with `shopify-events setup`")
    expect { ShopifyEvents.emit!("t", "x" * 2000) }.to raise_error(ShopifyEvents::SpoolError, /#{dir}/)
    expect(ShopifyEvents::SpoolError).to be < ShopifyEvents::QueueError
  end

  it "sysv: behind a full queue, one log line naming it and the fix, drops counted, no exception from emit" do
    sink = use_transport(:sysv, logger: Logger.new(log))
    sink.queue.capacity = 16_384
    missing = File.join(sink.spool_dir, "missing")
    ShopifyEvents.configure { |c| c.spool_dir = missing }
    expect_one_line_and_counted_drops(missing)
    expect(ShopifyEvents.stats).to include(spooled: 0, spooling: 0)
  end

  it "spool: one log line naming it and the fix, every emit dropped and counted, no exception from emit" do
    sink = use_transport(:spool, logger: Logger.new(log))
    missing = File.join(sink.spool_dir, "missing")
    ShopifyEvents.configure { |c| c.spool_dir = missing }
    expect_one_line_and_counted_drops(missing)
    expect(ShopifyEvents.stats).to include(emitted: 0, dropped: 20)
  end
end
