# frozen_string_literal: true

RSpec.describe "concurrent emitters" do
  it "loses and corrupts nothing from 4 forked processes x 4 threads x 10k events" do
    processes = 4
    threads = 4
    per_thread = 10_000
    total = processes * threads * per_thread

    with_queue_limits(msgmnb: 64 * 1024 * 1024) do
      queue = use_sysv_queue
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

      events = drain_events(queue)
      expect(events.shift.topic).to eq("warmup")
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
