# frozen_string_literal: true

require "fileutils"
require "open3"
require "rbconfig"

# The outbox across whole processes, through the SysV queue, the drain and a
# Kafka-protocol broker (Tansu), read back with headers (SpecKafkaRecords).
RSpec.describe "the transactional outbox across processes",
               skip: (SpecTansu.available? ? false : "no tansu binary: run script/tansu install") do
  let(:script) { File.join(SpecProcesses::ROOT, "spec", "scripts", "outbox_process.rb") }

  around do |example|
    Dir.mktmpdir("spec-outbox") do |dir|
      @dir = dir
      SpecTansu.run do |tansu|
        @tansu = tansu
        example.run
      end
    end
  end

  before(:all) { SpecActiveRecord.load }

  # The drain from the queue at `key` to the spec broker, uncompressed for SpecKafkaRecords.
  def start_drain(key)
    log = File.join(@dir, "drain.log")
    spawn_child({}, SpecProcesses::CLI, "drain", "--queue-key", key.to_s, "--brokers", @tansu.bootstrap,
                "--state-dir", File.join(@dir, "state"), "--kafka", "compression.type=none", log: log)
  end

  def run_script(env, *args)
    Open3.capture3(env.merge("RUBYOPT" => nil), RbConfig.ruby, script, *args, chdir: SpecProcesses::ROOT)
  end

  def outbox_ids(database)
    SpecActiveRecord.with_connection(database) do |connection|
      connection.select_values("SELECT event_id FROM shopify_events_outbox ORDER BY event_id")
    end
  end

  { sqlite: "SQLite", postgresql: "PostgreSQL" }.each do |adapter, name|
    it "re-sends, from the next process, the outbox row of a process killed between commit and send: " \
       "it arrives once in Kafka with its event id and emit time (#{name})" do
      skip SpecActiveRecord.unavailable_reason(adapter) if SpecActiveRecord.unavailable_reason(adapter)

      topic = @tansu.create_topic("outbox.crash")
      database = SpecActiveRecord.create_database(adapter, dir: @dir)
      key = spec_queue_key
      ShopifyEvents::Native::Queue.open_or_create(key, 0o600)
      start_drain(key)
      env = { "DATABASE_URL" => SpecActiveRecord.url(database), "SHOPIFY_EVENTS_QUEUE_KEY" => key.to_s }

      started = Time.now
      out, err, status = run_script(env, "crash", topic)
      crashed = Time.now
      expect(status.termsig).to eq(Signal.list["KILL"]), "#{out}\n#{err}"
      id = out.strip
      expect(outbox_ids(database)).to eq([id])
      expect(SpecActiveRecord.with_connection(database) { |c| c.select_value("SELECT COUNT(*) FROM orders").to_i })
        .to eq(1)

      out, err, status = run_script(env, "sweep")
      expect(status).to be_success, "#{out}\n#{err}"
      expect(out).to include("swept 1")
      expect(outbox_ids(database)).to be_empty

      SpecKafkaRecords.new(@tansu.bootstrap).wait_for(topic, count: 1)
      sleep 1 # anything sent twice would arrive meanwhile
      records = SpecKafkaRecords.new(@tansu.bootstrap).all(topic)
      expect(records.map { |r| r.headers["event_id"] }).to eq([id])
      expect(records.first.value).to eq('{"order":"crash"}')
      # The emit time in the crashed process, not the time of the re-send.
      expect(records.first.timestamp_ms).to be_between((started.to_f * 1000).floor, (crashed.to_f * 1000).ceil)
    end
  end

  it "delivers every committed event of 10,000 transactions from 4 processes once, and no rolled-back one",
     skip: SpecActiveRecord.unavailable_reason(:postgresql) || false do
    topic = @tansu.create_topic("outbox.load")
    database = SpecActiveRecord.create_database(:postgresql, dir: @dir)
    key = spec_queue_key
    with_queue_limits(msgmnb: 8 << 20) { ShopifyEvents::Native::Queue.open_or_create(key, 0o600) }
    start_drain(key)
    env = { "DATABASE_URL" => SpecActiveRecord.url(database), "SHOPIFY_EVENTS_QUEUE_KEY" => key.to_s }

    results = Array.new(4) { |p| Thread.new { run_script(env, "load", topic, "2500", "p#{p}") } }.map(&:value)
    results.each { |out, err, status| expect(status).to be_success, "#{out[-2000..]}\n#{err}" }
    lines = results.flat_map { |out, _, _| out.lines.map(&:split) }
    committed = lines.filter_map { |state, id| id if state == "committed" }
    rolled_back = lines.filter_map { |state, id| id if state == "rolled_back" }
    expect([committed.size, rolled_back.size]).to eq([8000, 2000])

    records = SpecKafkaRecords.new(@tansu.bootstrap).wait_for(topic, count: 8000, timeout: 60)
    ids = records.map { |r| r.headers["event_id"] }
    expect(ids.size).to eq(ids.uniq.size)
    expect(ids).to match_array(committed)
    expect(ids & rolled_back).to be_empty
    expect(outbox_ids(database)).to be_empty
  end
end
