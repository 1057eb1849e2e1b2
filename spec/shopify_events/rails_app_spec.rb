# frozen_string_literal: true

require "json"
require "net/http"
require "open3"
require "rbconfig"
require "tmpdir"

# The one-file Rails app in spec/rails_app, booted in child processes.
RSpec.describe "a Rails app using the gem" do
  app_dir = File.join(SpecProcesses::ROOT, "spec", "rails_app")
  clean_env = ENV.keys.grep(/\ASHOPIFY_EVENTS_/).to_h { |name| [name, nil] }
                 .merge("RAILS_APP_LOG" => File::NULL, "RUBYOPT" => nil)

  it "captures a request's event in test mode with the Minitest assertions" do
    output, status = Open3.capture2e(clean_env, RbConfig.ruby, File.join(app_dir, "test", "orders_test.rb"))
    expect(status).to be_success, output
    expect(output).to match(/4 runs, \d+ assertions, 0 failures, 0 errors/)
  end

  it "captures a request's event in test mode with the RSpec matcher (rspec-rails)" do
    output, status = Open3.capture2e(clean_env, "rspec", "-O", File::NULL,
                                     File.join(app_dir, "spec", "orders_request.rb"), chdir: SpecProcesses::ROOT)
    expect(status).to be_success, output
    expect(output).to include("4 examples, 0 failures")
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
end
