# frozen_string_literal: true

require_relative "transactions_fixtures"

# Helpers of bench/transactions.rb.
module TransactionsBench
  # A transport that takes every event and does nothing: what remains is
  # the Ruby dispatch of ShopifyEvents.emit.
  class NullTransport
    ID = "00000000-0000-7000-8000-000000000000"

    def emit(_topic, _payload, _key, _headers) = ID
    def emit!(_topic, _payload, _key, _headers) = ID
    def send_envelope(_bytes) = ID
    def send_envelope!(_bytes) = ID
  end

  # ShopifyEvents.emit as it was before events followed transactions
  # (commit 6691cdf): one @watched check, then the transport.
  module PreviousEmit
    @transport = nil
    @watched = false
    @instrumentation = nil

    class << self
      attr_writer :transport

      def emit(topic, payload, key: nil, headers: nil)
        current = @transport || raise("no transport")
        return @instrumentation.emit(current, topic, payload, key, headers) if @watched

        current.emit(topic, payload, key, headers)
      end
    end
  end

  # ShopifyEvents configured (headers or not) with `transport` in place;
  # the first emit learns nobody subscribes to notifications.
  def with_null(transport, headers: false, &block)
    Headers.enable(headers)
    ShopifyEvents.configure do |c|
      c.transport = :test
      c.outbox_sweep_interval = 0
    end
    ShopifyEvents.transport
    ShopifyEvents.with_transport(transport) do
      ShopifyEvents.emit(TOPIC, PAYLOAD)
      headers ? Headers.in_request(&block) : block.call
    end
  ensure
    Headers.enable(false)
  end

  # Elapsed ns of `count` calls of the block.
  def loop_ns(count)
    i = 0
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    while i < count
      yield
      i += 1
    end
    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
  end

  def timed
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    yield
    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
  end

  # Runs every variant (a lambda returning elapsed ns) `rounds` times,
  # interleaved, after 3 warm-up rounds; returns the median per variant.
  def measure(rounds, variants, after_each: nil)
    samples = variants.transform_values { [] }
    (rounds + 3).times do |round|
      variants.each do |name, run|
        ns = run.call
        after_each&.call
        samples[name] << ns if round >= 3
      end
    end
    samples.transform_values { |values| values.sort[values.size / 2] }
  end

  def report(title, medians, per)
    puts "\n#{title}"
    medians.each { |name, ns| puts format("  %-46s %12.1f", name, ns.fdiv(per)) }
    medians.transform_values! { |ns| ns.fdiv(per) }
  end

  def machine
    cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.+)/, 1]
    "#{cpu}, #{Etc.nprocessors} cores, load #{File.read("/proc/loadavg").split.first(3).join(" ")}, " \
      "Linux #{`uname -r`.strip}, #{RUBY_DESCRIPTION}, ActiveRecord #{ActiveRecord.version}"
  end

  # A fresh SysV queue with room for a batch (kernel.msgmnb raised as root
  # while the bench runs, and restored).
  def with_bench_queue(batch)
    old = raise_msgmnb(batch * 1024)
    queue = ShopifyEvents::Native::Queue.create(0x7EB0_0000 | (Process.pid & 0xFFFF), 0o600)
    yield queue.key
  ensure
    queue&.remove
    File.write(MSGMNB, old.to_s) if old
  end

  MSGMNB = "/proc/sys/kernel/msgmnb"

  # Empties the bench queue outside the timed region: received one by one,
  # since the production extension has no call that empties a queue.
  def empty_queue(key)
    queue = ShopifyEvents::Native::Queue.open(key)
    nil while queue.try_receive
  end

  # Returns the old value if it raised it.
  def raise_msgmnb(bytes)
    old = Integer(File.read(MSGMNB))
    return nil unless Process.uid.zero? && bytes > old

    File.write(MSGMNB, bytes.to_s)
    old
  end

  def create_schema(connection)
    connection.create_table(:orders, force: true) { |t| t.string :name }
    connection.drop_table(:shopify_events_outbox, if_exists: true)
    migration = Module.new
    migration.module_eval(format(ShopifyEvents::Generators::OutboxGenerator::MIGRATION,
                                 version: ActiveRecord::Migration.current_version))
    migration::CreateShopifyEventsOutbox.new.tap { |m| m.verbose = false }.exec_migration(connection, :up)
  end

  def postgres_database
    require_relative "../spec/support/spec_postgres"
    reason = SpecPostgres.unavailable_reason
    abort "--postgres: #{reason}" if reason
    SpecPostgres.instance.create_database("bench")
  end
end
