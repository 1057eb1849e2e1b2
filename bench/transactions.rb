# frozen_string_literal: true

# What events that follow ActiveRecord transactions cost (README, "Rails"),
# every baseline in this one process, batches of all variants interleaved
# round by round so drift hits each alike; medians of ns per call.
#
#   ruby -Ilib bench/transactions.rb [--rounds N] [--batch N] [--postgres] [--latency N]
#
# 1. The fast path, no transaction open anywhere (a null transport, so only
#    the Ruby dispatch is measured): ShopifyEvents.emit against a replica
#    of emit as it was before transactions, and against the transport's own
#    emit. Also: a transaction open in another thread (the precise,
#    per-connection check), and request id + traceparent headers.
# 2. emit inside a transaction (deferred: the call, and the call plus the
#    send at commit) against emit outside one, sysv transport. The
#    transaction runs no SQL, so ActiveRecord never sends BEGIN/COMMIT: what
#    is left is the gem's own cost.
# 3. The outbox: a transaction with emit(outbox: true) against one with a
#    plain INSERT of the same row (the floor), SQLite file (and PostgreSQL
#    with --postgres: a private server, as the specs start it).
# 4. --latency N (needs Tansu): commit to Kafka ack, p50/p99, direct
#    transport (the commit, the send, and ShopifyEvents.flush returning
#    once Kafka acknowledged), deferred and outbox.

require "optparse"
require "etc"
require "tmpdir"
require "active_record"
require "shopify_events"
require "shopify_events/active_record"
require "generators/shopify_events/outbox/outbox_generator"
require_relative "transactions_support"

options = { rounds: 101, batch: 2000, postgres: false, latency: 0 }
OptionParser.new do |o|
  o.on("--rounds N", Integer, "timed batches per variant (default 101)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
  o.on("--postgres", "also measure the outbox on a private PostgreSQL server") { options[:postgres] = true }
  o.on("--latency N", Integer, "commit-to-ack samples through Tansu (default 0: skip)") { |v| options[:latency] = v }
end.parse!

include TransactionsBench # rubocop:disable Style/MixinUsage
TOPIC = "bench.events"
PAYLOAD = ("a".."z").cycle.first(200).join.freeze
batch = options[:batch]
dir = Dir.mktmpdir("bench-transactions")
ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: File.join(dir, "bench.sqlite3"))
create_schema(ActiveRecord::Base.connection)
puts "machine: #{machine}"
puts "method: #{options[:rounds]} interleaved rounds; median ns per call (per transaction in part 3)"

# 1. The fast path and the headers, null transport.
null = NullTransport.new
PreviousEmit.transport = null
holder = TransactionHolder.new
explicit = { "kind" => "web" }.freeze
medians = measure(options[:rounds], {
                    "transport.emit (floor)" => -> { loop_ns(batch) { null.emit(TOPIC, PAYLOAD, nil, nil) } },
                    "emit before transactions (replica)" => -> { loop_ns(batch) { PreviousEmit.emit(TOPIC, PAYLOAD) } },
                    "ShopifyEvents.emit" => lambda {
                      with_null(null) do
                        raise "emit is not on its fast path" unless ShopifyEvents.plain_emit?

                        loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD) }
                      end
                    },
                    "emit, a transaction open in another thread" => lambda {
                      with_null(null) { holder.around { loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD) } } }
                    },
                    "emit, request id + traceparent" => lambda {
                      with_null(null, headers: true) { loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD) } }
                    },
                    "emit, request id + traceparent + 1 explicit" => lambda {
                      with_null(null, headers: true) do
                        loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD, headers: explicit) }
                      end
                    }
                  })
holder.stop
report("1. fast path and headers (null transport)", medians, batch)
puts format("  added to emit outside transactions = %+.1f ns (target <= 20; ShopifyEvents.emit - replica)",
            medians["ShopifyEvents.emit"] - medians["emit before transactions (replica)"])

# 2. Deferred against immediate, sysv transport.
with_bench_queue(batch) do |key|
  ShopifyEvents.configure do |c|
    c.transport = :sysv
    c.queue_key = key
    c.outbox_sweep_interval = 0 # no sweeper thread in the measurements
  end
  ShopifyEvents.emit(TOPIC, PAYLOAD)
  calls = nil
  medians = measure(options[:rounds], {
                      "emit outside a transaction" => -> { loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD) } },
                      "emit in a transaction: the call" => lambda {
                        ActiveRecord::Base.transaction { calls = loop_ns(batch) { ShopifyEvents.emit(TOPIC, PAYLOAD) } }
                        calls
                      },
                      "emit in a transaction: call + send at commit" => lambda {
                        timed { ActiveRecord::Base.transaction { batch.times { ShopifyEvents.emit(TOPIC, PAYLOAD) } } }
                      },
                      "empty transaction (reference, per transaction)" => lambda {
                        timed { ActiveRecord::Base.transaction { nil } } * batch
                      }
                    }, after_each: -> { empty_queue(key) })
  report("2. deferred against immediate (sysv)", medians, batch)
  puts format("  deferred (call + send) / outside = %.2fx",
              medians["emit in a transaction: call + send at commit"] / medians["emit outside a transaction"])

  # 3. The outbox against the plain INSERT of the same row.
  databases = { "SQLite" => ActiveRecord::Base.connection_db_config.configuration_hash }
  databases["PostgreSQL"] = postgres_database if options[:postgres]
  databases.each do |name, config|
    ActiveRecord::Base.establish_connection(config)
    connection = ActiveRecord::Base.connection
    create_schema(connection)
    rounds = [options[:rounds], 31].min
    per = [batch / 10, 100].min
    medians = measure(rounds, outbox_variants(connection, per), after_each: lambda {
      empty_queue(key)
      connection.execute("DELETE FROM orders")
      connection.execute("DELETE FROM shopify_events_outbox")
    })
    report("3. outbox, one event per transaction (#{name}); ns per transaction", medians, per)
    puts format("  outbox / INSERT floor = %.2fx", medians["emit(outbox: true)"] / medians["INSERT of the row (floor)"])
  end
end

# 4. Commit to Kafka ack.
if options[:latency].positive?
  require_relative "transactions_latency"
  TransactionsLatency.run(options[:latency], TOPIC, PAYLOAD)
end
