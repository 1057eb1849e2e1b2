# frozen_string_literal: true

require "fileutils"
require "json"
require "net/http"
require "open3"
require "rbconfig"
require "tmpdir"

# The one-file Rails app in spec/rails_app, booted in child processes.
RSpec.describe "a Rails app using the gem" do
  app_dir = File.join(SpecProcesses::ROOT, "spec", "rails_app")
  # The test-mode app's own SQLite file: never shared with another run.
  test_database = File.join(Dir.tmpdir, "shopify_events_rails_app_spec_#{Process.pid}.sqlite3")
  clean_env = ENV.keys.grep(/\ASHOPIFY_EVENTS_/).to_h { |name| [name, nil] }
                 .merge("RAILS_APP_LOG" => File::NULL, "RUBYOPT" => nil,
                        "DATABASE_URL" => "sqlite3:#{test_database}?timeout=10000")

  after(:all) { FileUtils.rm_f(test_database) }

  it "captures a request's event in test mode with the Minitest assertions" do
    output, status = Open3.capture2e(clean_env, RbConfig.ruby, File.join(app_dir, "test", "orders_test.rb"))
    expect(status).to be_success, output
    expect(output).to match(/7 runs, \d+ assertions, 0 failures, 0 errors/)
  end

  it "captures a request's event in test mode with the RSpec matcher (rspec-rails)" do
    output, status = Open3.capture2e(clean_env, "rspec", "-O", File::NULL,
                                     File.join(app_dir, "spec", "orders_request.rb"), chdir: SpecProcesses::ROOT)
    expect(status).to be_success, output
    expect(output).to include("6 examples, 0 failures")
  end

  it "delivers requests' events in production mode (sysv, Puma cluster) through the drain to Kafka",
     skip: (SpecTansu.available? ? false : "no tansu binary: run script/tansu install") do
    Dir.mktmpdir("rails-app-sysv") do |dir|
      SpecTansu.run do |tansu|
        tansu.create_topic("orders.created")
        key = spec_queue_key
        drain_log = File.join(dir, "drain.log")
        drain = spawn_child({}, SpecProcesses::CLI, "drain", "--queue-key", key.to_s, "--brokers", tansu.bootstrap,
                            "--state-dir", File.join(dir, "state"), log: drain_log)
        port = free_port
        puma_log = File.join(dir, "puma.log")
        puma = spawn_child({ "RAILS_ENV" => "production", "RAILS_APP_QUEUE_KEY" => key.to_s,
                             "DATABASE_URL" => "sqlite3:#{File.join(dir, "app.sqlite3")}?timeout=10000",
                             "RAILS_APP_LOG" => File.join(dir, "rails.log") },
                           "puma", "--preload", "-w", "2", "-t", "1:4", "-b", "tcp://127.0.0.1:#{port}",
                           File.join(app_dir, "config.ru"), log: puma_log)
        wait_for_port(port, pid: puma, log: puma_log)

        responses = (1..20).map do |i|
          response = Net::HTTP.post_form(URI("http://127.0.0.1:#{port}/orders"), "id" => i.to_s)
          expect(response.code).to eq("201"), response.body
          JSON.parse(response.body)
        end
        expect(responses.map { |r| r["transport"] }.uniq).to eq(["sysv"])
        expect(responses.map { |r| r["event_id"] }).to all(match(/\A\h{8}-\h{4}-7\h{3}-/))

        records = tansu.consume("orders.created", count: 20)
        expect(records.map { |r| r.value["id"] }).to match_array((1..20).to_a), File.read(drain_log)
        expect(records.map { |r| r.value["pid"] }.uniq).not_to include(puma) # emitted by the forked workers
        # Puma ends a TERM with status 143 or by the signal; only a KILL (stuck) fails.
        expect(stop_child(puma).termsig).not_to eq(Signal.list["KILL"]), File.read(puma_log)
        expect(stop_child(drain)).to be_success, File.read(drain_log)
      end
    end
  end

  # Events in `queue` until `count` arrived or `timeout` seconds passed.
  def collect_events(queue, count, timeout: 20)
    events = []
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    while events.size < count && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      events.concat(drain_events(queue))
      sleep 0.05
    end
    events
  end

  it "follows transactions in forked Puma workers (production, sysv, SQLite): committed events arrive once, " \
     "rolled-back ones never, and a worker's sweeper re-sends the outbox row a dead process left" do
    SpecActiveRecord.load
    ShopifyEvents.config.outbox_sweep_interval = 0 # this process only writes the row a dead one left
    Dir.mktmpdir("rails-app-transactions") do |dir|
      database = SpecActiveRecord.create_database(:sqlite, dir: dir)
      left_id, left = ShopifyEvents::Native.encode_event("orders.created", { id: 0, left_behind: true }, nil, nil)
      SpecActiveRecord.with_connection(database) do |connection|
        connection.transaction { ShopifyEvents::Outbox.insert(connection, left_id, left) }
      end
      queue = with_queue_limits(msgmnb: 1 << 20) { ShopifyEvents::Native::Queue.open_or_create(spec_queue_key, 0o600) }
      port = free_port
      puma_log = File.join(dir, "puma.log")
      rails_log = File.join(dir, "rails.log")
      env = { "RAILS_ENV" => "production", "RAILS_APP_QUEUE_KEY" => queue.key.to_s,
              "DATABASE_URL" => SpecActiveRecord.url(database), "RAILS_APP_OUTBOX_SWEEP_AFTER" => "1",
              "SHOPIFY_EVENTS_OUTBOX_SWEEP_INTERVAL" => "0.5", "RAILS_APP_LOG" => rails_log }
      puma = spawn_child(env, "puma", "--preload", "-w", "2", "-t", "1:4", "-b", "tcp://127.0.0.1:#{port}",
                         File.join(app_dir, "config.ru"), log: puma_log)
      wait_for_port(port, pid: puma, log: puma_log)

      # A worker's first request starts its sweeper, which re-sends the row.
      workers = Array.new(10) { JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/stats")))["pid"] }.uniq
      expect(workers).not_to include(puma)
      left_behind = collect_events(queue, 1)
      expect(left_behind.map(&:id)).to eq([left_id]), File.read(rails_log)

      responses = (1..24).map do |i|
        params = { "id" => i.to_s, "fail" => (i % 3).zero? ? "1" : "0", "outbox" => i.even? ? "1" : "0" }
        response = Net::HTTP.post_form(URI("http://127.0.0.1:#{port}/orders"), params)
        expect(response.code).to eq("201"), "#{response.code} #{response.body}\n#{File.read(rails_log)}"
        JSON.parse(response.body)
      end
      committed = (1..24).reject { |i| (i % 3).zero? }
      expect(responses.map { |r| r["committed"] }).to eq((1..24).map { |i| !(i % 3).zero? })

      events = collect_events(queue, committed.size)
      sleep 1.5 # a sweeper sending a row twice would have done it by now
      events.concat(drain_events(queue))
      expect(events.map { |e| e.data["id"] }).to match_array(committed)
      expect(events.map(&:id)).to match_array(responses.select { |r| r["committed"] }.map { |r| r["event_id"] })
      expect(events.map { |e| e.data["pid"] }.uniq).not_to include(puma) # sent by the forked workers
      expect(events.map { |e| e.headers["request_id"] }.compact.size).to eq(committed.size)
      SpecActiveRecord.with_connection(database) do |connection|
        expect(connection.select_value("SELECT COUNT(*) FROM shopify_events_outbox").to_i).to eq(0)
        expect(connection.select_value("SELECT COUNT(*) FROM orders").to_i).to eq(committed.size)
      end
      expect(stop_child(puma).termsig).not_to eq(Signal.list["KILL"]), File.read(puma_log)
    end
  end
end
