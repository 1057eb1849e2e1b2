# frozen_string_literal: true

require "English"
require "fileutils"
require "json"
require "socket"
require "tmpdir"

# A real Kafka-protocol broker for specs: Tansu on a free loopback port
# (memory storage), started as this process's child and killed (by its own
# pid) after. Records are read back with `tansu cat consume`, which shows
# each record's JSON value (not its headers or timestamp: the Rust tests in
# crates/core/tests/direct.rs check those with librdkafka's consumer).
class SpecTansu
  BIN = ENV.fetch("TANSU_BIN", "/opt/tansu/bin/tansu")

  # One record read back: its topic, partition and JSON value, parsed.
  Record = Struct.new(:topic, :partition, :value, keyword_init: true) # rubocop:disable Lint/StructNewOverride

  attr_reader :port

  # Yields a started broker and stops it after the block.
  def self.run
    tansu = start
    yield tansu
  ensure
    tansu&.stop
  end

  def self.start
    last = nil
    3.times do
      tansu = new(SpecProcesses.free_port)
      return tansu if tansu.ready?

      last = tansu.log_text
      tansu.stop
    end
    raise "tansu did not start:\n#{last}"
  end

  def self.available?
    File.executable?(BIN)
  end

  def initialize(port)
    @port = port
    @dir = Dir.mktmpdir("spec-tansu-")
    url = "tcp://127.0.0.1:#{port}"
    @pid = Process.spawn(BIN, "broker", "--listener-url", url, "--advertised-listener-url", url,
                         "--storage-engine", "memory://tansu/", in: File::NULL, %i[out err] => log_path)
  end

  def bootstrap
    "127.0.0.1:#{@port}"
  end

  def ready?(timeout: 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until port_open?
      return false if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline || exited?

      sleep 0.02
    end
    true
  end

  def create_topic(name, partitions: 3)
    out = IO.popen([BIN, "topic", "create", "--broker", "tcp://#{bootstrap}", "--partitions", partitions.to_s, name],
                   err: %i[child out], &:read)
    raise "tansu topic create #{name} failed: #{out}" unless $CHILD_STATUS.success?

    name
  end

  # Reads `topic` from the beginning until `count` records arrived or
  # `timeout` seconds passed; returns what arrived.
  def consume(topic, count:, partitions: 3, timeout: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      records = (0...partitions).flat_map { |partition| read_partition(topic, partition) }
      return records if records.size >= count || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.2
    end
  end

  def stop
    SpecProcesses.terminate(@pid, grace: 5) if @pid
  ensure
    @pid = nil
    FileUtils.rm_rf(@dir) if @dir
  end

  def log_text
    File.exist?(log_path) ? File.read(log_path) : ""
  end

  private

  def log_path
    File.join(@dir, "tansu.log")
  end

  def port_open?
    TCPSocket.new("127.0.0.1", @port).close
    true
  rescue SystemCallError
    false
  end

  def exited?
    !Process.wait(@pid, Process::WNOHANG).nil?
  rescue Errno::ECHILD
    true
  end

  # Every record of one partition: `tansu cat consume` prints one JSON
  # array per record batch, from offset 0 (whatever --fetch-offset says).
  def read_partition(topic, partition)
    out = IO.popen([BIN, "cat", "consume", "--broker", "tcp://#{bootstrap}", "--partition", partition.to_s,
                    "--max-wait-time-ms", "50", topic], err: %i[child out], &:read)
    out.each_line.reject { |line| line.strip.empty? }.flat_map do |line|
      JSON.parse(line).map { |record| Record.new(topic: topic, partition: partition, value: record["value"]) }
    end
  rescue JSON::ParserError
    warn "tansu cat consume #{topic}/#{partition}: #{out[0, 500]}"
    []
  end
end
