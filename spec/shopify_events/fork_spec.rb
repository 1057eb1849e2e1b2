# frozen_string_literal: true

require "timeout"

# A parent that emitted forks 4 children that emit (as Puma's cluster mode
# does): nothing lost, no crash, no hang.
RSpec.describe "emitting across fork" do
  children = 4
  per_child = 50

  def wait_children(pids, timeout: 60)
    Timeout.timeout(timeout) { pids.map { |pid| Process.wait2(pid).last } }
  rescue Timeout::Error
    pids.each { |pid| Process.kill("KILL", pid) rescue Errno::ESRCH } # rubocop:disable Style/RescueModifier
    raise "children hung for #{timeout}s"
  end

  def fork_children(count, per_child, topic)
    Array.new(count) do |child|
      Process.fork do
        ok = (1..per_child).all? { |i| ShopifyEvents.emit(topic, { child: child, i: i, pid: Process.pid }) }
        ok &&= ShopifyEvents.flush(20)
        exit!(ok ? 0 : 1)
      rescue Exception => e # rubocop:disable Lint/RescueException
        warn "child #{child}: #{e.class}: #{e.message}"
        exit!(2)
      end
    end
  end

  def expected_payloads(children, per_child)
    (0...children).flat_map { |child| (1..per_child).map { |i| [child, i] } }
  end

  it "sysv: a parent that emitted forks 4 children that emit; every event arrives once" do
    with_queue_limits(msgmnb: 1 << 20) do
      queue = use_sysv_queue
      expect(ShopifyEvents.emit("fork.sysv", { parent: "before" })).to be_a(String)
      statuses = wait_children(fork_children(children, per_child, "fork.sysv"))
      expect(statuses).to all(be_success)
      expect(ShopifyEvents.emit("fork.sysv", { parent: "after" })).to be_a(String)

      events = drain_events(queue)
      expect(events.map(&:id).uniq.size).to eq(events.size)
      data = events.map(&:data)
      expect(data.filter_map { |d| d["parent"] }).to eq(%w[before after])
      expect(data.filter_map { |d| [d["child"], d["i"]] if d["child"] }).to match_array(expected_payloads(children,
                                                                                                          per_child))
    end
  end

  it "spool: a parent that emitted forks 4 children that emit; every event is in a spool file once" do
    sink = use_transport(:spool)
    expect(ShopifyEvents.emit("fork.spool", { parent: "before" })).to be_a(String)
    statuses = wait_children(fork_children(children, per_child, "fork.spool"))
    expect(statuses).to all(be_success)
    expect(ShopifyEvents.emit("fork.spool", { parent: "after" })).to be_a(String)
    # One writer per process: the parent's file and one of each child's.
    producers = Dir.children(sink.spool_dir).grep(/\.seg\z/).map { |name| name.split("-")[1] }.uniq
    expect(producers.size).to eq(1 + children)

    events = sink.events
    expect(events.map(&:id).uniq.size).to eq(events.size)
    data = events.map(&:data)
    expect(data.filter_map { |d| d["parent"] }).to eq(%w[before after])
    expect(data.filter_map { |d| [d["child"], d["i"]] if d["child"] }).to match_array(expected_payloads(children,
                                                                                                        per_child))
  end

  it "direct: a parent that emitted forks 4 children that emit; Kafka gets every event once",
     skip: (SpecTansu.available? ? false : "no tansu binary: run script/tansu install") do
    SpecTansu.run do |tansu|
      tansu.create_topic("fork.direct")
      ShopifyEvents.configure do |c|
        c.transport = :direct
        c.brokers = tansu.bootstrap
        c.logger = Logger.new(StringIO.new)
      end
      expect(ShopifyEvents.emit("fork.direct", { parent: "before" })).to be_a(String)
      expect(ShopifyEvents.flush(20)).to be(true) # the parent's producer and its threads are running

      statuses = wait_children(fork_children(children, per_child, "fork.direct"))
      expect(statuses).to all(be_success)
      expect(ShopifyEvents.emit("fork.direct", { parent: "after" })).to be_a(String)
      expect(ShopifyEvents.flush(20)).to be(true)
      expect(ShopifyEvents.stats).to include(emitted: 2, delivered: 2, failed: 0)

      records = tansu.consume("fork.direct", count: 2 + (children * per_child))
      values = records.map(&:value)
      expect(values.filter_map { |v| v["parent"] }).to match_array(%w[before after])
      expect(values.filter_map { |v| [v["child"], v["i"]] if v["child"] }).to match_array(expected_payloads(children,
                                                                                                            per_child))
    end
  end
end
