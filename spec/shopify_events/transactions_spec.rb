# frozen_string_literal: true

require "fileutils"

# Events inside ActiveRecord transactions, on real SQLite and PostgreSQL
# databases, sent through a real SysV queue.
RSpec.shared_examples "events that follow transactions" do |adapter|
  include SpecActiveRecord

  before(:all) do
    SpecActiveRecord.load
    @dir = Dir.mktmpdir("spec-transactions")
    ActiveRecord::Base.establish_connection(SpecActiveRecord.create_database(adapter, dir: @dir))
  end

  after(:all) do
    ActiveRecord::Base.remove_connection
    FileUtils.rm_rf(@dir)
  end

  let(:log) { StringIO.new }
  let!(:queue) { use_sysv_queue(logger: Logger.new(log)) }

  before do
    no_sweeper_thread
    ActiveRecord::Base.connection.execute("DELETE FROM orders")
    ActiveRecord::Base.connection.execute("DELETE FROM shopify_events_outbox")
  end

  def payloads(events)
    events.map { |event| event.data["n"] }
  end

  it "sends an event emitted in a transaction when it commits, with the id emit returned" do
    id = nil
    SpecOrder.transaction do
      SpecOrder.create!(name: "a")
      id = ShopifyEvents.emit("orders.created", { n: 1 })
      expect(id).to match(/\A\h{8}-\h{4}-7\h{3}-/)
      expect(queue.stat[:depth]).to eq(0)
    end
    expect(drain_events(queue).map(&:id)).to eq([id])
  end

  it "keeps emit order across savepoints and discards a rolled-back savepoint's events" do
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 })
      SpecOrder.transaction(requires_new: true) do
        ShopifyEvents.emit("t", { n: 2 })
        SpecOrder.transaction(requires_new: true) { ShopifyEvents.emit("t", { n: 3 }) }
        ShopifyEvents.emit("t", { n: 4 })
      end
      ShopifyEvents.emit("t", { n: 5 })
      SpecOrder.transaction(requires_new: true) do
        ShopifyEvents.emit("t", { n: 6 })
        SpecOrder.transaction(requires_new: true) { ShopifyEvents.emit("t", { n: 7 }) }
        raise ActiveRecord::Rollback
      end
      SpecOrder.transaction(requires_new: true) do
        SpecOrder.transaction(requires_new: true) do
          ShopifyEvents.emit("t", { n: 8 })
          raise ActiveRecord::Rollback
        end
        ShopifyEvents.emit("t", { n: 9 })
      end
      ShopifyEvents.emit("t", { n: 10 })
    end
    expect(payloads(drain_events(queue))).to eq([1, 2, 3, 4, 5, 9, 10])
  end

  it "discards every event of a transaction that rolls back" do
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 })
      SpecOrder.transaction(requires_new: true) { ShopifyEvents.emit("t", { n: 2 }) }
      raise ActiveRecord::Rollback
    end
    expect(drain_events(queue)).to be_empty
    expect(ShopifyEvents::Transactions.stats[:rolled_back]).to be >= 2
  end

  it "discards the events and re-raises when the block raises" do
    expect do
      SpecOrder.transaction do
        SpecOrder.create!(name: "a")
        ShopifyEvents.emit("t", { n: 1 })
        raise ArgumentError, "boom"
      end
    end.to raise_error(ArgumentError, "boom")
    expect(SpecOrder.count).to eq(0)
    expect(drain_events(queue)).to be_empty
  end

  it "sends at once with after_commit: false (events that must go out even on rollback)" do
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 }, after_commit: false)
      expect(payloads(drain_events(queue))).to eq([1])
      raise ActiveRecord::Rollback
    end
    expect(drain_events(queue)).to be_empty
  end

  it "sends at once with the after_commit: :immediate setting, unless a call passes after_commit: true " \
     "or goes through the outbox" do
    ShopifyEvents.config.after_commit = :immediate
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 })
      ShopifyEvents.emit("t", { n: 2 }, after_commit: true)
      ShopifyEvents.emit("t", { n: 3 }, outbox: true)
      expect(payloads(drain_events(queue))).to eq([1])
    end
    expect(payloads(drain_events(queue))).to eq([2, 3])
  end

  it "sends an outbox event at once outside a transaction, and with after_commit: false on an outbox topic" do
    ShopifyEvents.config.outbox_topics = ["t"]
    ShopifyEvents.emit("t", { n: 1 }, outbox: true)
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 2 }, after_commit: false)
      expect(outbox_count).to eq(0)
      raise ActiveRecord::Rollback
    end
    expect(payloads(drain_events(queue))).to eq([1, 2])
    expect { ShopifyEvents.emit("t", "x", outbox: true, after_commit: false) }
      .to raise_error(ArgumentError, /pass one of them/)
  end

  it "publishes emit.shopify_events at the call for a deferred event, with transport :deferred or :outbox" do
    received = []
    subscription = ActiveSupport::Notifications.subscribe("emit.shopify_events") { |*, data| received << data }
    ids = SpecOrder.transaction do
      [ShopifyEvents.emit("t", { n: 1 }), ShopifyEvents.emit("t", { n: 2 }, outbox: true)]
    end
    published = received.map { |data| data.values_at(:transport, :event_id) }
    expect(published).to eq([[:deferred, ids[0]], [:outbox, ids[1]]])
  ensure
    ActiveSupport::Notifications.unsubscribe(subscription) if subscription
  end

  it "raises validation errors at the call and defers nothing for them" do
    SpecOrder.transaction do
      expect { ShopifyEvents.emit("bad topic", { n: 1 }) }.to raise_error(ShopifyEvents::InvalidTopic)
      expect { ShopifyEvents.emit("t", Object.new) }.to raise_error(TypeError, /payload must be/)
      expect { ShopifyEvents.emit("t", "x" * ShopifyEvents::Native.message_size_limit) }
        .to raise_error(ShopifyEvents::PayloadTooLarge, /larger than the \d+-byte limit/)
      expect { ShopifyEvents.emit("t", { n: 1 }, after_commit: :later) }.to raise_error(ArgumentError, /after_commit/)
      ShopifyEvents.emit("t", { n: 2 })
    end
    expect(payloads(drain_events(queue))).to eq([2])
  end

  it "carries the time of the emit, not of the commit" do
    emitted_at = Time.now
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 })
      sleep 0.2
    end
    event = drain_events(queue).first
    expect(event.time).to be_within(0.1).of(emitted_at)
  end

  it "sends at once outside a transaction and returns to the fast path after every kind of end" do
    ShopifyEvents.emit("t", { n: 0 }) # learns nobody subscribes to notifications
    expect(ShopifyEvents).to be_plain_emit
    SpecOrder.transaction { expect(ShopifyEvents).not_to be_plain_emit }
    SpecOrder.transaction { raise ActiveRecord::Rollback }
    expect { SpecOrder.transaction { raise "boom" } }.to raise_error(RuntimeError)
    expect(ShopifyEvents::Transactions::Tracker.open_count).to eq(0)
    expect(ShopifyEvents).to be_plain_emit
    ShopifyEvents.emit("t", { n: 1 })
    expect(payloads(drain_events(queue))).to eq([0, 1])
  end

  it "forgets a transaction whose connection was thrown away while it was open" do
    connection = ActiveRecord::Base.connection
    connection.begin_transaction
    connection.execute("SELECT 1")
    expect(ShopifyEvents::Transactions::Tracker.open_count).to eq(1)
    connection.throw_away! # what ActiveRecord does with a connection stuck in a broken transaction
    expect(ShopifyEvents::Transactions::Tracker.open_count).to eq(0)
    ShopifyEvents.emit("t", { n: 1 })
    expect(ShopifyEvents).to be_plain_emit
  end

  it "does not hold events back in a transaction that is not joinable (use_transactional_tests), " \
     "only in the app's transactions inside it" do
    SpecOrder.transaction(joinable: false) do
      ShopifyEvents.emit("t", { n: 1 })
      expect(payloads(drain_events(queue))).to eq([1])
      SpecOrder.transaction do
        ShopifyEvents.emit("t", { n: 2 })
        expect(drain_events(queue)).to be_empty
      end
      expect(payloads(drain_events(queue))).to eq([2])
      SpecOrder.transaction do
        ShopifyEvents.emit("t", { n: 3 })
        raise ActiveRecord::Rollback
      end
      raise ActiveRecord::Rollback
    end
    expect(drain_events(queue)).to be_empty
  end

  it "drops a deferred event the queue cannot take at commit (counted, logged), and emit! raises after commit" do
    queue.capacity = 16_384 # two 6,000-byte events fit, a third does not
    SpecOrder.transaction do
      3.times { |i| ShopifyEvents.emit("t", (i + 1).to_s * 6000) }
    end
    expect(drain_events(queue).map { |e| e.payload[0] }).to eq(%w[1 2])
    expect(ShopifyEvents.stats[:dropped]).to eq(1)
    expect(log.string).to include("dropping events")

    expect do
      SpecOrder.transaction do
        SpecOrder.create!(name: "committed")
        3.times { |i| ShopifyEvents.emit!("t", (i + 4).to_s * 6000) }
        ShopifyEvents.emit("t", "7")
      end
    end.to raise_error(ShopifyEvents::QueueFull)
    expect(SpecOrder.where(name: "committed").count).to eq(1)
    expect(drain_events(queue).map { |e| e.payload[0] }).to eq(%w[4 5 7])
  end

  describe "with the outbox" do
    it "writes the envelope in the transaction, sends it after the commit and deletes the row" do
      id = nil
      SpecOrder.transaction do
        id = ShopifyEvents.emit("t", { n: 1 }, outbox: true)
        rows = outbox_rows
        expect(rows.map(&:first)).to eq([id])
        expect(ShopifyEvents::Event.decode(rows.first.last).id).to eq(id)
      end
      expect(drain_events(queue).map(&:id)).to eq([id])
      expect(outbox_count).to eq(0)
      expect(ShopifyEvents::Transactions.stats).to include(outbox_written: be >= 1, outbox_deleted: be >= 1)
    end

    it "rolls the row back with its transaction or savepoint" do
      SpecOrder.transaction do
        ShopifyEvents.emit("t", { n: 1 }, outbox: true)
        SpecOrder.transaction(requires_new: true) do
          ShopifyEvents.emit("t", { n: 2 }, outbox: true)
          raise ActiveRecord::Rollback
        end
        expect(outbox_count).to eq(1)
        raise ActiveRecord::Rollback
      end
      expect(outbox_count).to eq(0)
      expect(drain_events(queue)).to be_empty
    end

    it "sends the topics in outbox_topics through the outbox, in order with other events" do
      ShopifyEvents.config.outbox_topics = "orders.paid, orders.shipped"
      SpecOrder.transaction do
        ShopifyEvents.emit("orders.created", { n: 1 })
        ShopifyEvents.emit("orders.paid", { n: 2 })
        ShopifyEvents.emit(:"orders.shipped", { n: 3 })
        ShopifyEvents.emit("orders.paid", { n: 4 }, outbox: false)
        expect(outbox_count).to eq(2)
      end
      expect(payloads(drain_events(queue))).to eq([1, 2, 3, 4])
      expect(outbox_count).to eq(0)
    end

    it "keeps the row of an event the transport did not take, for the sweeper to send with its id" do
      queue.capacity = 16_384
      [1000, 100, 10, 1].each do |size|
        loop { queue.try_send("x" * size) }
      rescue ShopifyEvents::QueueFull
        next
      end
      id = SpecOrder.transaction { ShopifyEvents.emit("t", { n: 1 }, outbox: true) }
      expect(outbox_rows.map(&:first)).to eq([id])

      expect(ShopifyEvents::Outbox.sweep(older_than: 60)).to eq(0) # too young: its process may still send it
      nil while queue.try_receive
      expect(ShopifyEvents::Outbox.sweep(older_than: 0)).to eq(1)
      expect(drain_events(queue).map(&:id)).to eq([id])
      expect(outbox_count).to eq(0)
    end

    it "logs a damaged row with its id and leaves it in the table" do
      good_id, good = ShopifyEvents::Native.encode_event("t", { n: 1 }, nil, nil)
      bad_id = "#{good_id[0..-2]}#{good_id[-1] == "0" ? "1" : "0"}" # another row, next to it
      connection = ActiveRecord::Base.connection
      connection.transaction do
        ShopifyEvents::Outbox.insert(connection, good_id, good)
        ShopifyEvents::Outbox.insert(connection, bad_id, good.byteslice(0, good.bytesize - 1))
      end
      expect(ShopifyEvents::Outbox.sweep(older_than: 0)).to eq(1)
      expect(drain_events(queue).map(&:id)).to eq([good_id])
      expect(outbox_rows.map(&:first)).to eq([bad_id])
      expect(log.string).to match(/outbox row #{bad_id} in shopify_events_outbox is damaged.*malformed envelope/)
    end

    it "reports rows older than outbox_max_age instead of sending them" do
      id, envelope = ShopifyEvents::Native.encode_event("t", { n: 1 }, nil, nil)
      old_id = "00000001-0000-7000-8000-000000000000"
      connection = ActiveRecord::Base.connection
      connection.transaction { ShopifyEvents::Outbox.insert(connection, old_id, envelope) }

      expect(ShopifyEvents::Outbox.sweep(older_than: 0)).to eq(0)
      expect(log.string).to include("1 outbox rows are older than outbox_max_age")
      expect(ShopifyEvents::Outbox.sweep(older_than: 0, max_age: nil)).to eq(0) # its envelope holds another id
      expect(log.string).to include("holds the envelope of event #{id}")
      expect(outbox_count).to eq(1)
    end

    it "re-sends at most outbox_sweep_rate rows a second" do
      connection = ActiveRecord::Base.connection
      connection.transaction do
        20.times do |n|
          ShopifyEvents::Outbox.insert(connection, *ShopifyEvents::Native.encode_event("t", { n: n }, nil, nil))
        end
      end
      ShopifyEvents.config.outbox_sweep_rate = 50
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      expect(ShopifyEvents::Outbox.sweep(older_than: 0)).to eq(20)
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be >= 0.38
      expect(payloads(drain_events(queue))).to eq((0...20).to_a)
    end

    it "sends each row once when two sweepers run at the same time" do
      connection = ActiveRecord::Base.connection
      ids = connection.transaction do
        Array.new(60) do |n|
          id, envelope = ShopifyEvents::Native.encode_event("t", { n: n }, nil, nil)
          ShopifyEvents::Outbox.insert(connection, id, envelope)
          id
        end
      end
      counts = Array.new(2) { Thread.new { ShopifyEvents::Outbox.sweep(older_than: 0) } }.map(&:value)
      expect(counts.sum).to eq(60)
      expect(drain_events(queue).map(&:id)).to match_array(ids)
      expect(outbox_count).to eq(0)
    end

    it "raises at the call, naming the generator, when the table does not exist" do
      ActiveRecord::Base.connection.rename_table(:shopify_events_outbox, :outbox_elsewhere)
      ShopifyEvents::Outbox.instance_variable_get(:@ready).clear
      SpecOrder.transaction do
        expect { ShopifyEvents.emit("t", { n: 1 }, outbox: true) }
          .to raise_error(ShopifyEvents::ConfigurationError, /rails generate shopify_events:outbox/)
        SpecOrder.create!(name: "still usable")
      end
      expect(SpecOrder.count).to eq(1)
    ensure
      ActiveRecord::Base.connection.rename_table(:outbox_elsewhere, :shopify_events_outbox)
    end
  end

  it "follows the transactions of the connection named by transaction_connection" do
    SpecOtherRecord.establish_connection(SpecActiveRecord.create_database(adapter, dir: @dir, name: "other"))
    ShopifyEvents.config.transaction_connection = "SpecOtherRecord"
    SpecOrder.transaction do
      ShopifyEvents.emit("t", { n: 1 })
      expect(payloads(drain_events(queue))).to eq([1])
    end
    SpecOtherOrder.transaction do
      ShopifyEvents.emit("t", { n: 2 })
      raise ActiveRecord::Rollback
    end
    SpecOtherOrder.transaction { ShopifyEvents.emit("t", { n: 3 }) }
    expect(payloads(drain_events(queue))).to eq([3])
  ensure
    SpecOtherRecord.remove_connection
  end

  it "lets a forked child emit at once while another thread of its parent holds a transaction" do
    ShopifyEvents.emit("t", { n: 0 })
    opened = Queue.new
    release = Queue.new
    holder = Thread.new do
      SpecOrder.transaction do
        SpecOrder.create!(name: "held")
        opened << true
        release.pop
      end
    end
    opened.pop
    expect(ShopifyEvents::Transactions::Tracker.open_count).to eq(1)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      ShopifyEvents.emit("t", { n: 1 })
      writer.write([ShopifyEvents::Transactions::Tracker.open_count, ShopifyEvents.plain_emit?].inspect)
      exit!(0)
    end
    writer.close
    expect(reader.read).to eq("[0, true]")
    expect(Process.wait2(pid).last).to be_success
    release << true
    holder.join
    expect(payloads(drain_events(queue))).to eq([0, 1])
  ensure
    release << true
    holder&.join
  end
end

RSpec.describe "events in ActiveRecord transactions (SQLite)" do
  it_behaves_like "events that follow transactions", :sqlite
end

RSpec.describe "events in ActiveRecord transactions (PostgreSQL)",
               skip: SpecActiveRecord.unavailable_reason(:postgresql) || false do
  it_behaves_like "events that follow transactions", :postgresql
end
