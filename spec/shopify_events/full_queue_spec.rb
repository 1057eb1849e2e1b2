# frozen_string_literal: true

# With the spool off, a full queue is where sysv drops (with a spool, it
# spools: sysv_spool_spec.rb, full_spool_spec.rb).
RSpec.describe "a full queue with the spool off" do
  let(:log) { StringIO.new }
  # 16 KiB whatever kernel.msgmnb other tests raised it to: quick to fill.
  let!(:queue) { use_sysv_queue(logger: Logger.new(log)).tap { |q| q.capacity = 16_384 } }

  def fill(queue)
    queue.try_send("x" * 1000) while queue.stat[:bytes] + 1000 <= queue.stat[:capacity]
  rescue ShopifyEvents::QueueFull
    nil
  end

  it "makes emit return nil, count the drop and log once per burst" do
    fill(queue)

    results = Array.new(25) { ShopifyEvents.emit("t", "y" * 2000) }

    expect(results).to all(be_nil)
    expect(ShopifyEvents.stats).to include(dropped: 25, queue_full: 25, emitted: 0)
    expect(log.string.scan("dropping events").size).to eq(1)
    expect(log.string).to include("is full")
  end

  it "logs recovery once the queue has room, and a new burst again" do
    fill(queue)
    3.times { ShopifyEvents.emit("t", "y" * 2000) }
    queue.try_receive while queue.stat[:depth].positive?

    expect(ShopifyEvents.emit("t", "ok")).to be_a(String)
    expect(log.string).to include("emitting again; 3 events dropped so far")

    fill(queue)
    ShopifyEvents.emit("t", "y" * 2000)
    expect(log.string.scan("dropping events").size).to eq(2)
  end

  it "makes emit! raise QueueFull without counting a drop" do
    fill(queue)

    expect { ShopifyEvents.emit!("t", "y" * 2000) }.to raise_error(ShopifyEvents::QueueFull, /is full/)
    expect(ShopifyEvents.stats).to include(dropped: 0, queue_full: 1)
  end

  it "keeps every event accepted before the queue filled" do
    ids = []
    while (id = ShopifyEvents.emit("t", "z" * 100))
      ids << id
    end

    expect(drain_events(queue).map(&:id)).to eq(ids)
  end
end
