# frozen_string_literal: true

require "socket"

# Part 4 of bench/transactions.rb: commit to Kafka ack, through Tansu (a
# Kafka-protocol broker on loopback, memory storage; script/tansu) and the
# direct transport. Each sample is one transaction (an INSERT and one event,
# deferred or through the outbox): the clock starts at the end of the block,
# before COMMIT, and stops when ShopifyEvents.flush returns, that is when
# Kafka acknowledged the event. Tansu is not Kafka: read the numbers as the
# gem's part plus a loopback broker's.
module TransactionsLatency
  TANSU = File.expand_path("../script/tansu", __dir__)

  def self.run(samples, topic, payload)
    port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    dir = Dir.mktmpdir("bench-tansu")
    start_tansu(port, dir, topic)
    puts "\n4. commit to Kafka ack (direct transport, Tansu on loopback, linger.ms=0), #{samples} transactions"
    { "deferred" => false, "outbox" => true }.each do |name, outbox|
      5.times { sample(topic, payload, outbox) } # connections, metadata
      report(name, Array.new(samples) { sample(topic, payload, outbox) })
    end
  ensure
    ShopifyEvents.reset!
    system(TANSU, "stop", port.to_s, dir, out: File::NULL) if port
  end

  def self.start_tansu(port, dir, topic)
    system(TANSU, "start", port.to_s, dir, exception: true, out: File::NULL)
    system(TANSU, "topic", port.to_s, topic, "1", exception: true, out: File::NULL)
    ShopifyEvents.configure do |c|
      c.transport = :direct
      c.brokers = "127.0.0.1:#{port}"
      c.kafka = { "linger.ms" => "0" }
      c.outbox_sweep_interval = 0
    end
  end

  def self.report(name, times)
    times.sort!
    at = ->(q) { times[[(q * times.size).ceil - 1, 0].max] / 1000.0 }
    puts format("  %-10s p50 %8.1f us   p99 %8.1f us   max %8.1f us", name, at.call(0.5), at.call(0.99), at.call(1.0))
  end

  def self.sample(topic, payload, outbox)
    started = nil
    ActiveRecord::Base.transaction do
      ActiveRecord::Base.connection.execute("INSERT INTO orders (name) VALUES ('latency')")
      ShopifyEvents.emit(topic, payload, outbox: outbox)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    end
    raise "Kafka did not acknowledge within 30 s" unless ShopifyEvents.flush(30)

    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - started
  end
end
