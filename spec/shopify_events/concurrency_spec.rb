# frozen_string_literal: true

RSpec.shared_examples "concurrent emitters" do
  it "loses and corrupts nothing from 4 forked processes x 4 threads x 10k events" do
    processes = 4
    threads = 4
    per_thread = 10_000
    total = processes * threads * per_thread

    with_room do
      sink = make_sink
      ShopifyEvents.emit("warmup", "parent emitted before forking")
      pids = Array.new(processes) do |p|
        fork do
          workers = Array.new(threads) do |t|
            Thread.new do
              per_thread.times do |i|
                ShopifyEvents.emit!("concurrency", "p=#{p} t=#{t} i=#{i}", key: "#{p}-#{t}",
                                                                           headers: { "seq" => i.to_s })
              end
            end
          end
          workers.each(&:join)
          exit!(0)
        rescue Exception => e # rubocop:disable Lint/RescueException
          warn "child #{p} failed: #{e.class}: #{e.message}"
          exit!(1)
        end
      end
      statuses = pids.map { |pid| Process.wait2(pid).last }
      expect(statuses).to all(be_success)

      events = sink.events
      expect(events.count { |e| e.topic == "warmup" }).to eq(1)
      events.reject! { |e| e.topic == "warmup" }
      expect(events.size).to eq(total)
      expect(events.map(&:id).uniq.size).to eq(total)
      seen = events.map do |e|
        p, t, i = e.payload.scan(/\d+/).map(&:to_i)
        expect([e.key, e.headers["seq"]]).to eq(["#{p}-#{t}", i.to_s])
        [p, t, i]
      end
      expected = (0...processes).to_a.product((0...threads).to_a, (0...per_thread).to_a)
      expect(seen.sort).to eq(expected)
      # Within one thread events keep their order.
      by_thread = seen.group_by { |p, t, _| [p, t] }
      expect(by_thread.values.map { |list| list.map(&:last) }).to all(eq((0...per_thread).to_a))
    end
  end
end

RSpec.describe "concurrent emitters" do
  context "over sysv" do
    def with_room(&block)
      with_queue_limits(msgmnb: 64 * 1024 * 1024, &block)
    end

    def make_sink
      use_transport(:sysv)
    end

    include_examples "concurrent emitters"
  end

  context "over the spool transport (each process writes its own files)" do
    def with_room
      yield
    end

    def make_sink
      use_transport(:spool)
    end

    include_examples "concurrent emitters"
  end
end
